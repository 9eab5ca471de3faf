//! The vectors of an index, in slot order, with their ids, metadata and removal marks.
//!
//! A slot is a vector's position in insertion order. Removing a vector only marks its
//! slot (a tombstone), because HNSW links refer to slots; [`VectorStore::compacted`] drops
//! marked slots and renumbers the rest.

use std::collections::HashMap;

use super::filter::{CodedMetadata, Metadata, MetadataTable};

/// The maximum number of slots in an index: slots are `u32`, and `u32::MAX` marks "no
/// slot".
pub const MAX_VECTORS: usize = u32::MAX as usize - 1;

#[derive(Debug, Clone)]
pub(crate) struct VectorStore {
    dimension: usize,
    vectors: Vec<f32>,
    ids: Vec<u64>,
    deleted: Vec<bool>,
    deleted_count: usize,
    slot_of_id: HashMap<u64, u32>,
    metadata: MetadataTable,
}

impl VectorStore {
    pub(crate) fn new(dimension: usize) -> Self {
        Self {
            dimension,
            vectors: Vec::new(),
            ids: Vec::new(),
            deleted: Vec::new(),
            deleted_count: 0,
            slot_of_id: HashMap::new(),
            metadata: MetadataTable::default(),
        }
    }

    /// Rebuilds a store from the parts of an index file, which the caller has checked:
    /// `vectors` has `ids.len() * dimension` values and live ids are distinct.
    pub(crate) fn from_parts(
        dimension: usize,
        vectors: Vec<f32>,
        ids: Vec<u64>,
        deleted: Vec<bool>,
        metadata: MetadataTable,
    ) -> Self {
        let slot_of_id = ids
            .iter()
            .zip(&deleted)
            .enumerate()
            .filter(|(_, (_, is_deleted))| !**is_deleted)
            .map(|(slot, (&id, _))| (id, slot as u32))
            .collect();
        Self {
            dimension,
            deleted_count: deleted.iter().filter(|&&d| d).count(),
            vectors,
            ids,
            deleted,
            slot_of_id,
            metadata,
        }
    }

    pub(crate) fn dimension(&self) -> usize {
        self.dimension
    }

    /// Returns the number of slots, removed ones included.
    pub(crate) fn slot_count(&self) -> usize {
        self.ids.len()
    }

    pub(crate) fn live_count(&self) -> usize {
        self.ids.len() - self.deleted_count
    }

    pub(crate) fn deleted_count(&self) -> usize {
        self.deleted_count
    }

    #[inline]
    pub(crate) fn vector(&self, slot: u32) -> &[f32] {
        let start = slot as usize * self.dimension;
        &self.vectors[start..start + self.dimension]
    }

    /// Returns the vectors of all slots, one after another.
    pub(crate) fn vectors(&self) -> &[f32] {
        &self.vectors
    }

    pub(crate) fn ids(&self) -> &[u64] {
        &self.ids
    }

    #[inline]
    pub(crate) fn id(&self, slot: u32) -> u64 {
        self.ids[slot as usize]
    }

    pub(crate) fn deleted(&self) -> &[bool] {
        &self.deleted
    }

    #[inline]
    pub(crate) fn is_deleted(&self, slot: u32) -> bool {
        self.deleted[slot as usize]
    }

    pub(crate) fn metadata(&self) -> &MetadataTable {
        &self.metadata
    }

    pub(crate) fn slot_of(&self, id: u64) -> Option<u32> {
        self.slot_of_id.get(&id).copied()
    }

    /// Returns the ids of the live vectors, in slot order.
    pub(crate) fn live_ids(&self) -> impl Iterator<Item = u64> + '_ {
        self.ids
            .iter()
            .zip(&self.deleted)
            .filter(|(_, deleted)| !**deleted)
            .map(|(&id, _)| id)
    }

    /// Appends a vector whose id has no live slot and returns its slot.
    pub(crate) fn push(&mut self, id: u64, vector: &[f32], metadata: &Metadata) -> u32 {
        debug_assert_eq!(vector.len(), self.dimension);
        debug_assert!(!self.slot_of_id.contains_key(&id));
        let slot = self.ids.len() as u32;
        self.vectors.extend_from_slice(vector);
        self.ids.push(id);
        self.deleted.push(false);
        self.metadata.push(metadata);
        self.slot_of_id.insert(id, slot);
        slot
    }

    /// Marks the live slot of `id` as removed and returns it, or returns `None` when the
    /// id has no live slot.
    pub(crate) fn remove(&mut self, id: u64) -> Option<u32> {
        let slot = self.slot_of_id.remove(&id)?;
        self.deleted[slot as usize] = true;
        self.deleted_count += 1;
        self.metadata.retire(slot);
        Some(slot)
    }

    /// Returns a store with only the live slots, in their order, and a fresh string table.
    pub(crate) fn compacted(&self) -> Self {
        let mut store = Self::new(self.dimension);
        store
            .vectors
            .reserve_exact(self.live_count() * self.dimension);
        for slot in 0..self.slot_count() as u32 {
            if !self.is_deleted(slot) {
                let metadata = self.metadata.decode(slot);
                store.push(self.id(slot), self.vector(slot), &metadata);
            }
        }
        store
    }

    /// Returns the bytes held by vectors, ids, marks and metadata codes; an estimate that
    /// leaves out allocator overhead and the id map's spare capacity.
    pub(crate) fn memory_bytes(&self) -> usize {
        // Id, removal mark, coded metadata, and an id map entry with its control byte.
        let per_slot = size_of::<u64>()
            + size_of::<bool>()
            + size_of::<CodedMetadata>()
            + size_of::<(u64, u32)>()
            + 1;
        let strings: usize = self
            .metadata
            .strings()
            .iter()
            .map(|s| 2 * s.len() + 48)
            .sum();
        let tags: usize = self
            .metadata
            .rows()
            .iter()
            .map(|row| row.tags.len() * 4)
            .sum();
        self.vectors.capacity() * 4 + self.ids.len() * per_slot + strings + tags
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remove_marks_and_compaction_renumbers() {
        let mut store = VectorStore::new(2);
        for id in 0..4u64 {
            let tag = Metadata {
                tags: vec![format!("t{id}")],
                ..Metadata::default()
            };
            store.push(id * 10, &[id as f32, 1.0], &tag);
        }
        assert_eq!(store.remove(10), Some(1));
        assert_eq!(store.remove(10), None);
        assert!(store.is_deleted(1));
        assert_eq!(store.live_count(), 3);
        assert_eq!(store.live_ids().collect::<Vec<_>>(), vec![0, 20, 30]);

        let compact = store.compacted();
        assert_eq!(compact.slot_count(), 3);
        assert_eq!(compact.deleted_count(), 0);
        assert_eq!(compact.slot_of(20), Some(1));
        assert_eq!(compact.vector(1), &[2.0, 1.0]);
        assert_eq!(compact.metadata().decode(2).tags, vec!["t3".to_owned()]);
        assert_eq!(compact.metadata().strings().len(), 3);
    }
}
