//! The `kai` command line.

fn main() -> std::process::ExitCode {
    kai_server::cli::main()
}
