//! Fuzz target: the host's decoder of the kernel's monitor stream (what `vigil` reads from
//! COM2), fed in arbitrary chunks. It must never panic, and every frame it yields must
//! encode back to a frame that decodes to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil_wire::{decode_frame, encode_kernel_frame, KernelFrame, KernelFrameDecoder};

fuzz_target!(|data: &[u8]| {
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    let cut = (split as usize).min(rest.len());
    let mut decoder = KernelFrameDecoder::new();
    let mut frames = Vec::new();
    for chunk in [&rest[..cut], &rest[cut..]] {
        decoder.push(chunk, |frame| {
            if let Ok(frame) = frame {
                frames.push(frame);
            }
        });
    }
    for frame in frames {
        let mut encoded = Vec::new();
        encode_kernel_frame(&frame, &mut encoded);
        let body = &encoded[..encoded.len() - 1];
        let again: KernelFrame = decode_frame(body).expect("a decoded frame re-encodes");
        assert_eq!(again, frame);
    }
});
