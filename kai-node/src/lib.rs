//! Node.js bindings for kai (N-API). Each export converts JS values, calls kai-core on the
//! libuv thread pool and rejects with an `Error` whose `code` is the kai error code.
//! Structured results cross as JS objects in the shapes of kai-server's REST API, and
//! vectors cross as Float32Arrays.

mod catalog;
mod convert;
mod embedder;
mod errors;
mod infer;
mod job;
mod kai;
// napi registers `readMesh` and `writeMesh` when the module loads (see `scene`).
#[cfg_attr(test, allow(dead_code))]
mod model;
mod models;
mod recon;
mod registry;
// napi registers `generateScene` when the module loads, so a test build of the library,
// which has no such registration, sees no caller.
#[cfg_attr(test, allow(dead_code))]
mod scene;

// candle allocates and frees a large buffer per tensor operation. glibc's malloc hands
// such buffers back to the kernel each time, so every operation page-faults. mimalloc
// keeps them, which made text embedding about 40% faster in benches/text_embed.py.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
