//! `vendorwall report`: what an auditor asks for, from the durable history and the config.
//! `data` gathers it (per vendor and list, per process, per day, exemptions and their uses, the
//! lists in force with their data dates, the scan's findings) into one [`Report`]; `text` and
//! `html` render it (the JSON form is the report serialized). Every number in the text and
//! HTML forms is a field of the JSON form.

pub mod data;
pub mod html;
pub mod text;

pub use data::{Report, gather};
