//! Integration tests of kai-core, in one binary so the crate links once.

#![allow(clippy::unwrap_used)] // Test helpers unwrap: a panic is the failure report.

mod catalog;
mod catalog_bulk;
mod catalog_postgres;
mod catalog_upload;
mod common;
mod db;
mod device;
mod fetch;
mod image_decode;
mod image_embedding;
mod image_quality;
mod index;
mod model_folders;
mod recognize_batch;
mod recon_sfm;
mod registry;
mod text_embedding;
