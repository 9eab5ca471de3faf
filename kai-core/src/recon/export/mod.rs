//! Writing reconstructions in formats other tools read: COLMAP's text model (with a
//! reader for round trips and for COLMAP's own output) and PLY point clouds.

pub mod colmap;
pub mod ply;

pub use colmap::{read_colmap_text, write_colmap_text};
pub use ply::{PlyFormat, PointCloud};
