//! The `kai` command line.

// candle allocates and frees a large buffer per tensor operation; glibc's malloc hands
// such buffers back to the kernel each time, so every operation page-faults. mimalloc
// keeps them, which made text embedding about 40% faster in benches/text_embed.py.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    kai_server::cli::main()
}
