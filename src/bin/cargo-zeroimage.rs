fn main() -> std::process::ExitCode {
    zeroimage::cli::cargo_zeroimage::main()
}
