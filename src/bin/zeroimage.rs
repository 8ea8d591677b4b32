//! `zeroimage`: package a static Linux executable as an OCI image.

#[path = "../cli/mod.rs"]
mod cli;

fn main() -> std::process::ExitCode {
    cli::main(cli::Program::Zeroimage)
}
