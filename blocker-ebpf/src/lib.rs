//! Empty library target: blocker-user build-depends on this crate so that cargo rebuilds the
//! daemon when the kernel programs change. The programs themselves are in `main.rs`.
#![no_std]
