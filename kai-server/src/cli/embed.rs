//! `kai embed text` and `kai embed image`.

use std::io::Read;
use std::path::{Path, PathBuf};

use clap::Subcommand;
use kai_core::embed::{DEFAULT_IMAGE_BATCH_SIZE, Prediction};
use kai_core::image::{ImageLimits, RgbImage, open};
use kai_core::models::{DEFAULT_IMAGE_MODEL, DEFAULT_TEXT_MODEL};
use kai_core::{Embeddings, Error, ImageEmbedder, TextEmbedder};
use serde::Serialize;

use super::{Cli, emit, print_json};

#[derive(Debug, Subcommand)]
pub enum EmbedCommand {
    /// Embed texts given as arguments and/or one per line of a file.
    Text {
        /// Texts to embed.
        texts: Vec<String>,
        /// File with one text per line (`-` reads standard input); its lines follow the
        /// TEXT arguments.
        #[arg(long, value_name = "FILE")]
        file: Option<PathBuf>,
        /// Model name or model folder.
        #[arg(long, default_value = DEFAULT_TEXT_MODEL)]
        model: String,
        /// Texts per forward pass.
        #[arg(long, default_value_t = kai_core::embed::DEFAULT_BATCH_SIZE)]
        batch_size: usize,
        /// Print `{"model", "dimension", "vectors"}` as JSON instead of one vector per line.
        #[arg(long)]
        json: bool,
    },
    /// Embed photos (JPEG, PNG, WebP, BMP, TIFF) and name their most probable ImageNet
    /// classes. Size limits come from KAI_MAX_IMAGE_BYTES and KAI_MAX_IMAGE_PIXELS.
    Image {
        /// Photos to embed.
        #[arg(required = true)]
        photos: Vec<PathBuf>,
        /// Model name or model folder.
        #[arg(long, default_value = DEFAULT_IMAGE_MODEL)]
        model: String,
        /// Photos per forward pass.
        #[arg(long, default_value_t = DEFAULT_IMAGE_BATCH_SIZE)]
        batch_size: usize,
        /// Classes listed per photo in the JSON output.
        #[arg(long, default_value_t = 5)]
        top_k: usize,
        /// Print `{"model", "dimension", "vectors", "labels"}` as JSON instead of one
        /// vector per line.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Serialize)]
struct EmbeddingsJson<'a> {
    model: &'a str,
    dimension: usize,
    vectors: Vec<&'a [f32]>,
}

#[derive(Serialize)]
struct ImageEmbeddingsJson<'a> {
    model: &'a str,
    dimension: usize,
    vectors: Vec<&'a [f32]>,
    labels: &'a [Vec<Prediction>],
}

pub fn run(cli: &Cli, command: &EmbedCommand) -> Result<(), Error> {
    match command {
        EmbedCommand::Text {
            texts,
            file,
            model,
            batch_size,
            json,
        } => embed_text(cli, texts, file.as_deref(), model, *batch_size, *json),
        EmbedCommand::Image {
            photos,
            model,
            batch_size,
            top_k,
            json,
        } => embed_images(cli, photos, model, *batch_size, *top_k, *json),
    }
}

fn embed_text(
    cli: &Cli,
    texts: &[String],
    file: Option<&Path>,
    model: &str,
    batch_size: usize,
    json: bool,
) -> Result<(), Error> {
    let mut inputs = texts.to_vec();
    if let Some(file) = file {
        inputs.extend(read_lines(file)?);
    }
    if inputs.is_empty() {
        return Err(Error::invalid(
            "input",
            "no text to embed; pass TEXT arguments or --file FILE",
        ));
    }

    let device = cli.device()?;
    let embedder =
        TextEmbedder::from_store(&cli.store(), model, &device)?.with_batch_size(batch_size)?;
    let vectors = embedder.embed(&inputs)?;

    if json {
        return print_json(&EmbeddingsJson {
            model: embedder.name(),
            dimension: vectors.dimension(),
            vectors: vectors.iter().collect(),
        });
    }
    print_vectors(&vectors)
}

fn embed_images(
    cli: &Cli,
    photos: &[PathBuf],
    model: &str,
    batch_size: usize,
    top_k: usize,
    json: bool,
) -> Result<(), Error> {
    // Every photo is decoded before the model loads, so a bad file fails fast.
    let limits = ImageLimits::from_env()?;
    let images: Vec<RgbImage> = photos
        .iter()
        .map(|path| open(path, &limits))
        .collect::<Result<_, _>>()?;
    let device = cli.device()?;
    let embedder =
        ImageEmbedder::from_store(&cli.store(), model, &device)?.with_batch_size(batch_size)?;
    let output = embedder.embed_and_classify(&images, top_k)?;
    if json {
        return print_json(&ImageEmbeddingsJson {
            model: embedder.name(),
            dimension: output.vectors.dimension(),
            vectors: output.vectors.iter().collect(),
            labels: &output.labels,
        });
    }
    print_vectors(&output.vectors)
}

/// Prints one vector per line, values separated by spaces.
fn print_vectors(vectors: &Embeddings) -> Result<(), Error> {
    for vector in vectors {
        let line: Vec<String> = vector.iter().map(f32::to_string).collect();
        emit(line.join(" "))?;
    }
    Ok(())
}

/// Reads one text per line; a final newline does not add an empty text.
fn read_lines(path: &Path) -> Result<Vec<String>, Error> {
    let mut bytes = Vec::new();
    let read = if path == Path::new("-") {
        std::io::stdin().read_to_end(&mut bytes)
    } else {
        std::fs::File::open(path).and_then(|mut f| f.read_to_end(&mut bytes))
    };
    read.map_err(|err| Error::invalid("--file", format!("cannot read {}: {err}", path.display())))?;
    let text = String::from_utf8(bytes).map_err(|err| {
        Error::invalid(
            "--file",
            format!(
                "{} is not UTF-8 text (invalid byte at offset {})",
                path.display(),
                err.utf8_error().valid_up_to()
            ),
        )
    })?;
    Ok(text.lines().map(str::to_owned).collect())
}
