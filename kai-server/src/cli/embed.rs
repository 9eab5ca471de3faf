//! `kai embed text`.

use std::io::Read;
use std::path::{Path, PathBuf};

use clap::Subcommand;
use kai_core::models::DEFAULT_TEXT_MODEL;
use kai_core::{Error, TextEmbedder};
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
}

#[derive(Serialize)]
struct EmbeddingsJson<'a> {
    model: &'a str,
    dimension: usize,
    vectors: Vec<&'a [f32]>,
}

pub fn run(cli: &Cli, command: &EmbedCommand) -> Result<(), Error> {
    let EmbedCommand::Text {
        texts,
        file,
        model,
        batch_size,
        json,
    } = command;

    let mut inputs = texts.clone();
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
        TextEmbedder::from_store(&cli.store(), model, &device)?.with_batch_size(*batch_size)?;
    let vectors = embedder.embed(&inputs)?;

    if *json {
        return print_json(&EmbeddingsJson {
            model: embedder.name(),
            dimension: vectors.dimension(),
            vectors: vectors.iter().collect(),
        });
    }
    for vector in &vectors {
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
