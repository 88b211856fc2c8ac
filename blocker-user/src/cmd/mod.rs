//! One module per subcommand, each exposing `run`.
pub mod check;
pub mod events;
pub mod lists;
pub mod manpage;
pub mod reload;
pub mod run;
pub mod status;
pub mod unload;

/// Prints `rows` as an aligned table under `header`.
pub fn print_table(header: &[&str], rows: &[Vec<String>]) {
    let mut table = comfy_table::Table::new();
    table
        .load_style(comfy_table::presets::NOTHING)
        .set_header(header.iter().copied());
    for row in rows {
        table.add_row(row.iter().cloned());
    }
    println!("{table}");
}
