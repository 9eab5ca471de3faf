//! Integration tests of kai-core, in one binary so the crate links once.

mod common;
mod fetch;
mod model_folders;
mod text_embedding;
