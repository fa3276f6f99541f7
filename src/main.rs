//! The `bramble` binary: parse the command line and hand over to the CLI module.

use tikv_jemallocator::Jemalloc;

#[global_allocator]
static GLOBAL: Jemalloc = Jemalloc;

fn main() -> std::process::ExitCode {
    bramble::cli::main()
}
