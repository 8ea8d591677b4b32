//! `cargo zeroimage`: build a crate and package its binary as an OCI image.

#[path = "../cli/mod.rs"]
mod cli;

fn main() -> std::process::ExitCode {
    cli::main(cli::Program::CargoZeroimage)
}
