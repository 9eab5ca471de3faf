//! `kai-server`: the REST and Model Context Protocol server, the container's entry point.

// See src/bin/kai.rs: mimalloc keeps candle's large per-operation buffers.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    kai_server::server::main()
}
