fn main() -> std::process::ExitCode {
    zeroimage::cli::zeroimage::main()
}
