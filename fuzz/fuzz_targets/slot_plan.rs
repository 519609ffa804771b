//! The writer's planning on fuzz-chosen numbers: the padded-striped slot
//! plan (`SlotPlanner`, `plan_chunks`) and the buffer sizing
//! (`LayoutInfo::detect`, `WriterSizing::plan`). Checks the documented
//! invariants, not just the absence of panics.
//!
//! Input: byte 0 picks the stripe scale, bytes 1..9 the stripe size, byte 9
//! the trailing-padding mode, then 4-byte little-endian chunk lengths
//! (scaled by the mode so chunks hit, straddle and exceed stripes); for the
//! sizing half, the same bytes read as magic / block size / producers /
//! budget.

#![no_main]

use iokernel::writer::{
    plan_chunks, LayoutInfo, PlanError, RegionKind, SlotPlanner, TrailingPadding, WriterSizing,
};
use libfuzzer_sys::fuzz_target;

fn u64_at(data: &[u8], at: usize) -> u64 {
    let mut bytes = [0u8; 8];
    for (i, b) in bytes.iter_mut().enumerate() {
        *b = data.get(at + i).copied().unwrap_or(0);
    }
    u64::from_le_bytes(bytes)
}

fn check_plan(data: &[u8]) {
    let scale = data.first().copied().unwrap_or(0);
    let raw_stripe = u64_at(data, 1);
    let stripe = match scale % 4 {
        0 => raw_stripe % 64,        // tiny stripes: many slots
        1 => raw_stripe % (1 << 20), // realistic
        2 => raw_stripe,             // anything, overflow paths
        _ => u64::MAX - raw_stripe % 4096,
    };
    let trailing = if data.get(9).copied().unwrap_or(0) & 1 == 0 {
        TrailingPadding::Omit
    } else {
        TrailingPadding::ToStripeBoundary
    };
    let chunk_lens: Vec<u64> = data
        .get(10..)
        .unwrap_or(&[])
        .chunks(4)
        .take(256)
        .map(|c| {
            let mut b = [0u8; 4];
            b[..c.len()].copy_from_slice(c);
            let n = u64::from(u32::from_le_bytes(b));
            match scale / 4 % 3 {
                0 => n % 200,
                1 => n,
                _ => n << 24,
            }
        })
        .collect();

    let plan = plan_chunks(stripe, chunk_lens.iter().copied(), trailing);
    if stripe == 0 {
        assert_eq!(plan, Err(PlanError::ZeroStripe));
        return;
    }
    // The streaming planner agrees with the collected plan, step by step.
    let mut planner = SlotPlanner::new(stripe).expect("non-zero stripe");
    let mut streamed = Vec::new();
    let mut first_error = None;
    for (i, &len) in chunk_lens.iter().enumerate() {
        let before = planner.cursor_bytes();
        match planner.place(len) {
            Ok(placement) => {
                assert_eq!(placement.data.len, len);
                assert_eq!(
                    placement.data.kind,
                    RegionKind::Data {
                        chunk_index: i as u64
                    }
                );
                if let Some(pad) = placement.padding_before {
                    assert_eq!(pad.offset, before);
                    assert_eq!(pad.end(), placement.data.offset);
                } else {
                    assert_eq!(placement.data.offset, before);
                }
                let slots =
                    (placement.data.end() - 1) / stripe - placement.data.offset / stripe + 1;
                assert_eq!(placement.slots_spanned, slots);
                streamed.extend(placement.regions());
            }
            Err(e) => {
                if len == 0 {
                    assert_eq!(
                        e,
                        PlanError::EmptyChunk {
                            chunk_index: i as u64
                        }
                    );
                } else {
                    assert!(
                        matches!(e, PlanError::Overflow { chunk_index, .. } if chunk_index == i as u64)
                    );
                }
                assert_eq!(
                    planner.cursor_bytes(),
                    before,
                    "a failed place moved the cursor"
                );
                first_error = Some(e);
                break;
            }
        }
    }
    let plan = match (plan, first_error) {
        (Err(e), Some(first)) => {
            assert_eq!(e, first);
            return;
        }
        (Ok(plan), None) => plan,
        (plan, first) => panic!("plan_chunks {plan:?} but streaming stopped at {first:?}"),
    };
    let summary = planner.finish(trailing);
    streamed.extend(summary.trailing_padding);
    assert_eq!(plan.regions, streamed);
    assert_eq!(plan.summary, summary);

    // Regions tile [0, file_len) in order; padding is shorter than a stripe
    // and ends on a stripe boundary; small chunks sit in one slot; a chunk
    // that follows padding starts on a boundary.
    let mut cursor = 0u64;
    let (mut data_bytes, mut padding_bytes, mut chunks) = (0u64, 0u64, 0u64);
    for (i, region) in plan.regions.iter().enumerate() {
        assert!(region.len > 0, "empty region {region:?}");
        assert_eq!(region.offset, cursor, "gap or overlap at {region:?}");
        cursor = region.end();
        match region.kind {
            RegionKind::Padding => {
                padding_bytes += region.len;
                assert!(region.len < stripe, "padding of a whole stripe: {region:?}");
                assert_eq!(region.end() % stripe, 0, "padding not ending on a boundary");
            }
            RegionKind::Data { chunk_index } => {
                assert_eq!(chunk_index, chunks);
                chunks += 1;
                data_bytes += region.len;
                if region.len <= stripe {
                    assert_eq!(
                        region.offset / stripe,
                        (region.end() - 1) / stripe,
                        "small chunk split"
                    );
                } else {
                    assert_eq!(region.offset % stripe, 0, "large chunk off a boundary");
                }
                if i > 0 && plan.regions[i - 1].kind == RegionKind::Padding {
                    assert_eq!(region.offset % stripe, 0);
                }
            }
        }
    }
    assert_eq!(summary.file_len_bytes, cursor);
    assert_eq!(summary.chunks, chunk_lens.len() as u64);
    assert_eq!(summary.data_bytes, chunk_lens.iter().sum::<u64>());
    assert_eq!(summary.data_bytes, data_bytes);
    assert_eq!(summary.padding_bytes, padding_bytes);
    if trailing == TrailingPadding::ToStripeBoundary {
        assert_eq!(summary.file_len_bytes % stripe, 0);
    }
}

fn check_sizing(data: &[u8]) {
    const MAGICS: [i64; 5] = [0x0BD0_0BD0, 0x4750_4653, 0xEF53, 0x0102_1994, 0x6969];
    let magic = MAGICS[usize::from(data.first().copied().unwrap_or(0)) % MAGICS.len()];
    let block = u64_at(data, 1) % (1 << 24);
    let producers = (u64_at(data, 9) % 512) as usize;
    let budget = u64_at(data, 17) >> (data.get(25).copied().unwrap_or(0) % 64);
    let stripe = u64_at(data, 26) % (1 << 26);
    let count = (u64_at(data, 34) % 2100) as u16;
    // A v1 layout with the fuzz-chosen stripe size written raw, valid or not.
    let mut lov = iokernel::writer::encode_v1(iokernel::writer::StripeBytes::MIN, count);
    lov[24..28].copy_from_slice(&(stripe as u32).to_le_bytes()); // lmm_stripe_size
    let mimic = data.get(42..).and_then(|b| std::str::from_utf8(b).ok());

    let Ok(info) = LayoutInfo::detect(magic, block, Some(&lov), mimic) else {
        return;
    };
    assert!(info.stripe_bytes > 0);
    assert!(info.stripe_count >= 1);
    assert!(info.block_size_bytes > 0);
    let Ok(sizing) = WriterSizing::plan(&info, producers, budget) else {
        return;
    };
    assert!(producers > 0);
    assert_eq!(sizing.chunk_bytes % 4096, 0, "{sizing:?}");
    assert!(sizing.chunk_bytes > 0);
    assert!((1..=2).contains(&sizing.buffers_per_producer), "{sizing:?}");
    assert!((1..=1024).contains(&sizing.channel_capacity), "{sizing:?}");
    assert!(
        sizing.buffered_bytes(producers) <= budget,
        "{sizing:?} over budget {budget}"
    );
    assert!(sizing.stripe_bytes > 0);
}

fuzz_target!(|data: &[u8]| {
    check_plan(data);
    check_sizing(data);
});
