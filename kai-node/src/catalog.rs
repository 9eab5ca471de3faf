//! The catalog on `Kai`: search, materials and their history, import, maintenance and
//! domain heads. Results have the shapes of kai-server's `/api/materials`,
//! `/api/catalog` and `/api/heads` routes.

use std::path::PathBuf;

use kai_core::Error;
use kai_core::catalog::{FusionWeights, MaterialFilter, MaterialInput, SearchQuery, SearchResults};
use kai_core::recognize::{HeadSpec, MATERIAL_TYPE_DOMAIN};
use napi::bindgen_prelude::{AsyncTask, Unknown};
use napi_derive::napi;
use serde::{Deserialize, Serialize};

use crate::convert::{ImageSource, from_js, from_json, options, split_field, uploads};
use crate::job::{Job, Json};
use crate::kai::Kai;

/// Search results returned when the query names no `topK`, as `kai search` does.
const DEFAULT_TOP_K: usize = 10;
/// Materials a listing returns when the filter names no `limit`, as kai-server does.
const DEFAULT_LIMIT: usize = 100;
/// Most materials one listing returns, as kai-server allows.
const MAX_LIMIT: usize = 1000;

/// A search, without its photo.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SearchRequest {
    query: Option<String>,
    material_type: Option<String>,
    #[serde(default)]
    tags: Vec<String>,
    collection: Option<String>,
    #[serde(default = "default_top_k")]
    top_k: usize,
    #[serde(default)]
    offset: usize,
    #[serde(default)]
    weights: FusionWeights,
}

fn default_top_k() -> usize {
    DEFAULT_TOP_K
}

/// One tag or several.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Tags {
    One(String),
    Many(Vec<String>),
}

/// The filter and page of `listMaterials`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ListRequest {
    material_type: Option<String>,
    collection: Option<String>,
    tag: Option<Tags>,
    #[serde(default)]
    offset: usize,
    #[serde(default = "default_limit")]
    limit: usize,
}

impl Default for ListRequest {
    fn default() -> Self {
        Self {
            material_type: None,
            collection: None,
            tag: None,
            offset: 0,
            limit: DEFAULT_LIMIT,
        }
    }
}

fn default_limit() -> usize {
    DEFAULT_LIMIT
}

/// The options of `replaceMaterial`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ReplaceOptions {
    expect_version: Option<u32>,
}

/// A head to train, with the defaults of `kai heads train`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct TrainHeadRequest {
    #[serde(default = "default_domain")]
    domain: String,
    #[serde(default = "default_label")]
    label: String,
    material_type: Option<String>,
}

impl Default for TrainHeadRequest {
    fn default() -> Self {
        Self {
            domain: default_domain(),
            label: default_label(),
            material_type: None,
        }
    }
}

fn default_domain() -> String {
    MATERIAL_TYPE_DOMAIN.to_owned()
}

fn default_label() -> String {
    "materialType".to_owned()
}

/// The contents of the catalog and its storage, as `GET /api/catalog` returns them.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct CatalogSummary {
    materials: usize,
    images: usize,
    material_types: Vec<String>,
    text_model: String,
    image_model: String,
    /// `sqlite` or `postgres`.
    storage: &'static str,
}

/// The outcome of `reindex`.
#[derive(Debug, Serialize)]
struct ReindexReport {
    reindexed: usize,
}

/// Trims and lower-cases a material type or tag, as the stored records have them, so
/// filters given in any case match.
fn normalized(value: &str) -> String {
    value.trim().to_lowercase()
}

#[napi]
impl Kai {
    /// Searches the catalog by text, by photo, or both.
    #[napi(
        ts_args_type = "query: SearchQuery",
        ts_return_type = "Promise<SearchResults>"
    )]
    pub fn search_materials(&self, query: Unknown<'_>) -> AsyncTask<Job<Json>> {
        let prepared = (|| {
            let (fields, image) = split_field("query", Some(query), "image")?;
            let request: SearchRequest = from_json("query", fields)?;
            let image = image
                .map(|image| ImageSource::from_js("query.image", image))
                .transpose()?;
            Ok((self.services()?, request, image))
        })();
        Job::run(prepared, |(services, request, image)| {
            let image = image.map(|s| s.load(&services.limits)).transpose()?;
            let query = SearchQuery {
                text: request.query,
                image,
                filter: MaterialFilter {
                    material_type: request.material_type.as_deref().map(normalized),
                    collection_id: request.collection,
                    tags: request.tags.iter().map(|t| normalized(t)).collect(),
                },
                top_k: request.top_k,
                offset: request.offset,
                weights: request.weights,
            };
            let results = services.catalog().search(&query)?;
            Json::of(&SearchResults { results })
        })
    }

    /// Returns the material with `id`, or null when none has it.
    #[napi(
        ts_args_type = "id: string",
        ts_return_type = "Promise<Material | null>"
    )]
    pub fn get_material(&self, id: Unknown<'_>) -> AsyncTask<Job<Json>> {
        let prepared = self.services_with::<String>("id", id);
        Job::run(prepared, |(services, id)| {
            Json::of(&services.catalog().get(&id)?)
        })
    }

    /// Lists materials in id order, `limit` (1 to 1000, default 100) at a time after
    /// `offset`. A shorter page is the last.
    #[napi(
        ts_args_type = "filter?: MaterialFilter",
        ts_return_type = "Promise<Material[]>"
    )]
    pub fn list_materials(&self, filter: Option<Unknown<'_>>) -> AsyncTask<Job<Json>> {
        let prepared = (|| {
            let request: ListRequest = options("filter", filter)?;
            if request.limit == 0 || request.limit > MAX_LIMIT {
                return Err(Error::invalid(
                    "filter.limit",
                    format!("must be between 1 and {MAX_LIMIT}, got {}", request.limit),
                ));
            }
            Ok((self.services()?, request))
        })();
        Job::run(prepared, |(services, request)| {
            let tags = match request.tag {
                None => Vec::new(),
                Some(Tags::One(tag)) => vec![normalized(&tag)],
                Some(Tags::Many(tags)) => tags.iter().map(|t| normalized(t)).collect(),
            };
            let filter = MaterialFilter {
                material_type: request.material_type.as_deref().map(normalized),
                collection_id: request.collection,
                tags,
            };
            Json::of(
                &services
                    .catalog()
                    .list(&filter, request.offset, request.limit)?,
            )
        })
    }

    /// Stores a new material from `record` (as in `catalog.json`, with no `images`) and
    /// its photos, in order. Every photo is read and decoded before anything is written.
    #[napi(
        ts_args_type = "record: MaterialInput, images?: ImageInput[]",
        ts_return_type = "Promise<Material>"
    )]
    pub fn create_material(
        &self,
        record: Unknown<'_>,
        images: Option<Unknown<'_>>,
    ) -> AsyncTask<Job<Json>> {
        let prepared = (|| {
            let record: MaterialInput = from_js("record", record)?;
            let sources = match images {
                Some(images) => ImageSource::all_from_js(images)?,
                None => Vec::new(),
            };
            Ok((self.services()?, record, sources))
        })();
        Job::run(prepared, |(services, record, sources)| {
            let uploads = uploads(sources, &services.limits)?;
            Json::of(&services.catalog().create_uploaded(&record, &uploads)?)
        })
    }

    /// Replaces a material's fields. `record.images` lists the stored image paths to
    /// keep and `images` are new photos after them. With neither, the material keeps
    /// its photos. Rejects with `KAI_CONFLICT` unless the material is at
    /// `options.expectVersion`, when given.
    #[napi(
        ts_args_type = "record: MaterialInput, images?: ImageInput[], options?: ReplaceOptions",
        ts_return_type = "Promise<Material>"
    )]
    pub fn replace_material(
        &self,
        record: Unknown<'_>,
        images: Option<Unknown<'_>>,
        options_arg: Option<Unknown<'_>>,
    ) -> AsyncTask<Job<Json>> {
        let prepared = (|| {
            let record: MaterialInput = from_js("record", record)?;
            let sources = match images {
                Some(images) => ImageSource::all_from_js(images)?,
                None => Vec::new(),
            };
            let options: ReplaceOptions = options("options", options_arg)?;
            Ok((self.services()?, record, sources, options))
        })();
        Job::run(prepared, |(services, record, sources, options)| {
            let uploads = uploads(sources, &services.limits)?;
            let material =
                services
                    .catalog()
                    .replace_uploaded(&record, &uploads, options.expect_version)?;
            Json::of(&material)
        })
    }

    /// Deletes a material and its vectors, keeping its history, and resolves to whether
    /// it existed.
    #[napi(ts_args_type = "id: string", ts_return_type = "Promise<boolean>")]
    pub fn delete_material(&self, id: Unknown<'_>) -> AsyncTask<Job<bool>> {
        let prepared = self.services_with::<String>("id", id);
        Job::run(prepared, |(services, id)| services.catalog().delete(&id))
    }

    /// Returns every version of a material, oldest first, deleted materials included.
    /// Rejects with `KAI_NOT_FOUND` when no material ever had the id.
    #[napi(
        ts_args_type = "id: string",
        ts_return_type = "Promise<MaterialVersion[]>"
    )]
    pub fn material_history(&self, id: Unknown<'_>) -> AsyncTask<Job<Json>> {
        let prepared = self.services_with::<String>("id", id);
        Job::run(prepared, |(services, id)| {
            Json::of(&services.catalog().history_or_not_found(&id)?)
        })
    }

    /// Imports a catalog folder (`catalog.json` or `catalog.csv` and its images). Records
    /// that fail are listed in the report's `failed`, not rejected.
    #[napi(
        ts_args_type = "folder: string",
        ts_return_type = "Promise<ImportReport>"
    )]
    pub fn import_catalog(&self, folder: Unknown<'_>) -> AsyncTask<Job<Json>> {
        let prepared = self.services_with::<PathBuf>("folder", folder);
        Job::run(prepared, |(services, folder)| {
            Json::of(&services.catalog().import(&folder, &mut |_| {})?)
        })
    }

    /// Returns the numbers of materials and images, the material types and the models.
    #[napi(ts_return_type = "Promise<CatalogSummary>")]
    pub fn catalog_summary(&self) -> AsyncTask<Job<Json>> {
        Job::run(self.services(), |services| {
            let catalog = services.catalog();
            Json::of(&CatalogSummary {
                materials: catalog.storage().count()?,
                images: catalog.storage().image_count()?,
                material_types: catalog.material_types()?,
                text_model: catalog.text_index().model().to_owned(),
                image_model: catalog.image_index().model().to_owned(),
                storage: if catalog.database().is_some() {
                    "postgres"
                } else {
                    "sqlite"
                },
            })
        })
    }

    /// Re-embeds every material with the configured models, rebuilds both vector spaces
    /// and refits the calibration. Other catalog calls wait until it finishes.
    #[napi(ts_return_type = "Promise<ReindexReport>")]
    pub fn reindex(&self) -> AsyncTask<Job<Json>> {
        Job::run(self.services(), |services| {
            let reindexed = services.catalog().reindex(&mut |_| {})?;
            Json::of(&ReindexReport { reindexed })
        })
    }

    /// Returns the stored recognition calibration (the default before the first fit).
    #[napi(ts_return_type = "Promise<Calibration>")]
    pub fn calibration(&self) -> AsyncTask<Job<Json>> {
        Job::run(self.services(), |services| {
            Json::of(&services.catalog().calibration()?)
        })
    }

    /// Fits the recognition calibration again on the catalog's images and stores it.
    #[napi(ts_return_type = "Promise<Calibration>")]
    pub fn calibrate(&self) -> AsyncTask<Job<Json>> {
        Job::run(self.services(), |services| {
            Json::of(&services.catalog().calibrate()?)
        })
    }

    /// Lists the trained heads with their held-out accuracy.
    #[napi(ts_return_type = "Promise<HeadManifest[]>")]
    pub fn heads(&self) -> AsyncTask<Job<Json>> {
        Job::run(self.services(), |services| {
            Json::of(&services.catalog().heads()?)
        })
    }

    /// Trains a head on the catalog's image embeddings and saves it, replacing one of the
    /// same domain. `{}` trains the material-type head that recognition uses.
    #[napi(
        ts_args_type = "spec?: TrainHeadSpec",
        ts_return_type = "Promise<HeadManifest>"
    )]
    pub fn train_head(&self, spec: Option<Unknown<'_>>) -> AsyncTask<Job<Json>> {
        let prepared = (|| {
            let request: TrainHeadRequest = options("spec", spec)?;
            Ok((self.services()?, request))
        })();
        Job::run(prepared, |(services, request)| {
            let spec = HeadSpec {
                domain: request.domain,
                label: request.label,
                material_type: request.material_type.as_deref().map(normalized),
            };
            Json::of(&services.catalog().train_head(&spec)?)
        })
    }
}
