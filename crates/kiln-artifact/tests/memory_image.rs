//! The memory image's layout in the file and its checks: the runtime maps it over the first
//! pages of a memory without looking again, so a checked load must refuse every image that
//! does not lie in whole pages of the data section and inside the memory's initial size.

mod common;

use common::host_compat;
use kiln_artifact::*;

const PAGE: u32 = 4096;

/// One defined memory of `min_pages`, an active segment in the image and a passive one.
fn module(min_pages: u64, image: MemoryImage) -> (ModuleInfo, Vec<u8>) {
    let mut info = ModuleInfo {
        function_alignment: 16,
        ..ModuleInfo::default()
    };
    info.memories.push(MemoryType {
        min: min_pages,
        max: None,
        memory64: false,
        shared: false,
    });
    info.data.push(DataSegment {
        kind: DataKind::Active {
            memory: MemoryIndex(0),
            offset: ConstExpr::I32(8),
        },
        bytes: ByteRange::default(),
    });
    info.data.push(DataSegment {
        kind: DataKind::Passive,
        bytes: ByteRange {
            start: 2 * PAGE,
            len: 3,
        },
    });
    info.memory_image = Some(image);
    let mut data = vec![0u8; 2 * PAGE as usize + 3];
    data[8..12].copy_from_slice(b"kiln");
    (info, data)
}

fn image(offset: u64, len: u32) -> MemoryImage {
    MemoryImage {
        memory: MemoryIndex(0),
        offset,
        bytes: ByteRange { start: 0, len },
        page_size: PAGE,
    }
}

fn build(info: &ModuleInfo, data: &[u8]) -> Vec<u8> {
    build_artifact(&ArtifactParts {
        info,
        code: &[],
        data,
        compat: &host_compat(),
        code_alignment: u64::from(PAGE),
    })
    .unwrap()
}

fn check(info: &ModuleInfo, data: &[u8]) -> Result<(), ArtifactError> {
    open_checked(&build(info, data), &host_compat()).map(|_| ())
}

#[test]
fn an_image_starts_a_page_aligned_data_section() {
    let (info, data) = module(1, image(0, 2 * PAGE));
    let file = build(&info, &data);
    let header = Header::parse(&file).unwrap();
    assert_eq!(header.data.offset % u64::from(PAGE), 0);
    assert_eq!(&file[header.data.offset as usize + 8..][..4], b"kiln");
    assert_eq!(read_metadata(&file).unwrap(), info);
    // Without an image the data section follows the code at 16 bytes, as before.
    let mut plain = info.clone();
    plain.memory_image = None;
    plain.data[DataIndex(0)].bytes = ByteRange { start: 8, len: 4 };
    let file = build(&plain, &data);
    let header = Header::parse(&file).unwrap();
    assert_eq!(header.data.offset % 16, 0);
    assert!(open_checked(&file, &host_compat()).is_ok());
}

#[test]
fn images_the_runtime_could_not_map_safely_are_refused() {
    let refused = |info: ModuleInfo, data: Vec<u8>, why: &str| {
        assert!(
            matches!(check(&info, &data), Err(ArtifactError::InvalidMetadata(_))),
            "{why}"
        );
    };
    let (info, data) = module(1, image(0, 2 * PAGE));
    check(&info, &data).unwrap();

    let (info, data) = module(1, image(0, 3 * PAGE));
    refused(info, data, "longer than the data section");
    let (info, data) = module(1, image(64 * 1024 - u64::from(PAGE), 2 * PAGE));
    refused(info, data, "past the memory's initial size");
    let (info, data) = module(0, image(0, PAGE));
    refused(info, data, "a memory of no pages");
    let (info, data) = module(1, image(100, PAGE));
    refused(info, data, "offset inside a page");
    let (info, data) = module(1, image(0, PAGE + 1));
    refused(info, data, "length not whole pages");
    let (info, data) = module(1, image(0, 0));
    refused(info, data, "empty");
    let (mut info, data) = module(1, image(0, PAGE));
    info.memory_image.as_mut().unwrap().page_size = 100;
    refused(info, data, "page size not a power of two");
    let (mut info, data) = module(1, image(0, PAGE));
    info.memory_image.as_mut().unwrap().bytes.start = 16;
    refused(info, data, "not at the start of the data section");
    let (mut info, data) = module(1, image(0, PAGE));
    info.memory_image.as_mut().unwrap().memory = MemoryIndex(1);
    refused(info, data, "a memory out of range");
    let (mut info, data) = module(1, image(0, PAGE));
    info.num_imported_memories = 1;
    info.imports.push(Import {
        module: "env".into(),
        name: "mem".into(),
        index: EntityIndex::Memory(MemoryIndex(0)),
    });
    refused(info, data, "an imported memory");
    let (mut info, data) = module(1, image(0, PAGE));
    info.memories[MemoryIndex(0)].shared = true;
    refused(info, data, "a shared memory");
    let (mut info, data) = module(1, image(0, PAGE));
    info.data[DataIndex(0)].bytes = ByteRange { start: 8, len: 4 };
    refused(info, data, "an active segment with bytes of its own");
}
