//! Class-name lists of image classifiers, compiled into the crate.

use crate::error::{Error, Result};

/// ImageNet-1k in classifier order: `synset<TAB>lemma, lemma, …` per line.
const IMAGENET_1K: &str = include_str!("../../../models/labels/imagenet-1k.txt");

/// The names of a classifier's outputs, in output order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Labels {
    name: String,
    ids: Vec<String>,
    names: Vec<String>,
}

impl Labels {
    /// Returns a built-in list by name (`imagenet-1k`).
    ///
    /// # Errors
    ///
    /// Returns [`Error::NotFound`] for an unknown name.
    pub fn builtin(name: &str) -> Result<Self> {
        let text = match name {
            "imagenet-1k" => IMAGENET_1K,
            _ => {
                return Err(Error::NotFound {
                    what: "label list",
                    name: name.to_owned(),
                    hint: " (built-in lists: imagenet-1k)".to_owned(),
                });
            }
        };
        let (ids, names) = text
            .lines()
            .map(|line| match line.split_once('\t') {
                Some((id, lemmas)) => (id.to_owned(), lemmas.to_owned()),
                None => (String::new(), line.to_owned()),
            })
            .unzip();
        Ok(Self {
            name: name.to_owned(),
            ids,
            names,
        })
    }

    /// Returns the list's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Returns the number of classes.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Returns whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// Returns the label of class `index`: its full lemma list, e.g. `tabby, tabby cat`.
    pub fn label(&self, index: usize) -> Option<&str> {
        self.names.get(index).map(String::as_str)
    }

    /// Returns the WordNet synset id of class `index`, e.g. `n02123045`.
    pub fn id(&self, index: usize) -> Option<&str> {
        self.ids.get(index).map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn imagenet_has_1000_classes_in_order() {
        let labels = Labels::builtin("imagenet-1k").unwrap();
        assert_eq!(labels.len(), 1000);
        assert_eq!(labels.label(0), Some("tench, Tinca tinca"));
        assert_eq!(labels.label(281), Some("tabby, tabby cat"));
        assert_eq!(labels.id(967), Some("n07920052"));
        assert_eq!(labels.label(1000), None);
    }

    #[test]
    fn unknown_list_is_not_found() {
        let err = Labels::builtin("places365").unwrap_err();
        assert!(err.to_string().contains("imagenet-1k"), "{err}");
    }
}
