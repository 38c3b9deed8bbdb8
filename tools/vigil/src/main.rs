//! `vigil`: the host tool that watches a Vigil kernel over its monitor channel.

fn main() -> std::process::ExitCode {
    vigil::cli::main()
}
