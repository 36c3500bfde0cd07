//! What verifying a seal costs, by artifact size: the keyed blake3 hash of the whole file,
//! on one thread and with blake3's multi-threaded mode (rayon), against xxh3-128 (the
//! checked loader's checksum) over the same bytes. The seal depends on nothing but the
//! bytes, so the files are made-up artifacts: the magic, then pseudo-random bytes.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use kiln_artifact::ArtifactKey;
use kiln_artifact::header::{self, MAGIC};
use kiln_artifact::seal::{compute_seal_with, seal, verify_seal};

fn file_of(len: usize) -> Vec<u8> {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut file: Vec<u8> = (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    file[..8].copy_from_slice(&MAGIC);
    file
}

fn benches(c: &mut Criterion) {
    let key = ArtifactKey::new([0x4b; 32]);
    let mut g = c.benchmark_group("seal");
    for (label, len) in [("1MiB", 1usize << 20), ("16MiB", 16 << 20)] {
        let mut file = file_of(len);
        seal(&mut file, &key).unwrap();
        g.throughput(Throughput::Bytes(len as u64));
        g.bench_function(BenchmarkId::new("blake3_keyed_1_thread", label), |b| {
            b.iter(|| compute_seal_with(black_box(&file), &key, false))
        });
        g.bench_function(BenchmarkId::new("blake3_keyed_rayon", label), |b| {
            b.iter(|| compute_seal_with(black_box(&file), &key, true))
        });
        g.bench_function(BenchmarkId::new("verify_seal", label), |b| {
            b.iter(|| verify_seal(black_box(&file), &key).unwrap())
        });
        g.bench_function(BenchmarkId::new("xxh3_checksum", label), |b| {
            b.iter(|| header::checksum(black_box(&file)))
        });
    }
    g.finish();
}

criterion_group!(seal_benches, benches);
criterion_main!(seal_benches);
