//! An empty qcow2 disk image, written without `qemu-img`: QEMU's record/replay keeps the
//! snapshot of the machine at reset in a qcow2 drive, and only the image needs to exist.
//!
//! The image is qcow2 version 2 with 64 KiB clusters: cluster 0 the header, 1 the refcount
//! table, 2 its one refcount block, 3 the L1 table (no data cluster is allocated). QEMU grows
//! it when it saves the snapshot.

/// log2 of the cluster size.
const CLUSTER_BITS: u32 = 16;
const CLUSTER: usize = 1 << CLUSTER_BITS;
/// The clusters the empty image consists of (header, refcount table, refcount block, L1).
const CLUSTERS: usize = 4;
const REFCOUNT_TABLE: usize = CLUSTER;
const REFCOUNT_BLOCK: usize = 2 * CLUSTER;
const L1_TABLE: usize = 3 * CLUSTER;

/// The bytes of an empty qcow2 image of `virtual_size` bytes (at most 512 MiB: one L1 entry).
pub fn empty_image(virtual_size: u64) -> Vec<u8> {
    assert!(virtual_size <= 512 << 20, "one L2 table covers 512 MiB");
    let mut image = vec![0u8; CLUSTERS * CLUSTER];
    let mut header = Vec::with_capacity(72);
    header.extend_from_slice(b"QFI\xfb");
    header.extend_from_slice(&2u32.to_be_bytes()); // version
    header.extend_from_slice(&0u64.to_be_bytes()); // backing file offset
    header.extend_from_slice(&0u32.to_be_bytes()); // backing file name size
    header.extend_from_slice(&CLUSTER_BITS.to_be_bytes());
    header.extend_from_slice(&virtual_size.to_be_bytes());
    header.extend_from_slice(&0u32.to_be_bytes()); // no encryption
    header.extend_from_slice(&1u32.to_be_bytes()); // L1 entries
    header.extend_from_slice(&(L1_TABLE as u64).to_be_bytes());
    header.extend_from_slice(&(REFCOUNT_TABLE as u64).to_be_bytes());
    header.extend_from_slice(&1u32.to_be_bytes()); // refcount table clusters
    header.extend_from_slice(&0u32.to_be_bytes()); // snapshots
    header.extend_from_slice(&0u64.to_be_bytes()); // snapshot table offset
    image[..header.len()].copy_from_slice(&header);
    image[REFCOUNT_TABLE..REFCOUNT_TABLE + 8]
        .copy_from_slice(&(REFCOUNT_BLOCK as u64).to_be_bytes());
    // Version 2 refcounts are 16 bits: each of the four clusters is used once.
    for cluster in 0..CLUSTERS {
        let at = REFCOUNT_BLOCK + 2 * cluster;
        image[at..at + 2].copy_from_slice(&1u16.to_be_bytes());
    }
    image
}

#[cfg(test)]
mod tests {
    use super::*;

    fn be64(bytes: &[u8], at: usize) -> u64 {
        u64::from_be_bytes(bytes[at..at + 8].try_into().unwrap())
    }

    #[test]
    fn the_header_points_at_the_tables_it_lays_out() {
        let image = empty_image(1 << 20);
        assert_eq!(image.len(), 4 * 65536);
        assert_eq!(&image[..4], b"QFI\xfb");
        assert_eq!(u32::from_be_bytes(image[4..8].try_into().unwrap()), 2);
        assert_eq!(u32::from_be_bytes(image[20..24].try_into().unwrap()), 16);
        assert_eq!(be64(&image, 24), 1 << 20);
        assert_eq!(be64(&image, 40), 3 * 65536, "L1 table");
        assert_eq!(be64(&image, 48), 65536, "refcount table");
        assert_eq!(be64(&image, 65536), 2 * 65536, "refcount block");
        let refcounts: Vec<u16> = (0..5)
            .map(|i| u16::from_be_bytes(image[2 * 65536 + 2 * i..][..2].try_into().unwrap()))
            .collect();
        assert_eq!(refcounts, [1, 1, 1, 1, 0]);
        assert!(image[3 * 65536..].iter().all(|&b| b == 0), "nothing mapped");
    }
}
