//! The ChaCha20 block function of RFC 8439 (Nir and Langley 2018, "ChaCha20 and Poly1305 for IETF
//! Protocols", section 2.3), used as the keyed pseudorandom function behind green-list membership.
//!
//! Only the block function is needed: membership of token `t` reads one 64-bit word of the block
//! with counter `t / 8`, so detection computes one block per token and marking the vocabulary
//! computes `vocab_size / 8` blocks. The output is fixed by the RFC, so green lists are the same on
//! every machine and in every version of this crate.

/// The constant words "expand 32-byte k" (RFC 8439, section 2.3).
const CONSTANTS: [u32; 4] = [0x6170_7865, 0x3320_646e, 0x7962_2d32, 0x6b20_6574];

#[inline(always)]
fn quarter_round(state: &mut [u32; 16], a: usize, b: usize, c: usize, d: usize) {
    state[a] = state[a].wrapping_add(state[b]);
    state[d] = (state[d] ^ state[a]).rotate_left(16);
    state[c] = state[c].wrapping_add(state[d]);
    state[b] = (state[b] ^ state[c]).rotate_left(12);
    state[a] = state[a].wrapping_add(state[b]);
    state[d] = (state[d] ^ state[a]).rotate_left(8);
    state[c] = state[c].wrapping_add(state[d]);
    state[b] = (state[b] ^ state[c]).rotate_left(7);
}

fn initial_state(key: &[u32; 8], counter: u32, nonce: &[u32; 3]) -> [u32; 16] {
    let mut state = [0u32; 16];
    state[..4].copy_from_slice(&CONSTANTS);
    state[4..12].copy_from_slice(key);
    state[12] = counter;
    state[13..].copy_from_slice(nonce);
    state
}

/// Computes one ChaCha20 block: the sixteen output words before serialisation to bytes.
pub(crate) fn block(key: &[u32; 8], counter: u32, nonce: &[u32; 3]) -> [u32; 16] {
    let input = initial_state(key, counter, nonce);
    let mut state = input;
    for _ in 0..10 {
        quarter_round(&mut state, 0, 4, 8, 12);
        quarter_round(&mut state, 1, 5, 9, 13);
        quarter_round(&mut state, 2, 6, 10, 14);
        quarter_round(&mut state, 3, 7, 11, 15);
        quarter_round(&mut state, 0, 5, 10, 15);
        quarter_round(&mut state, 1, 6, 11, 12);
        quarter_round(&mut state, 2, 7, 8, 13);
        quarter_round(&mut state, 3, 4, 9, 14);
    }
    for (word, input_word) in state.iter_mut().zip(input) {
        *word = word.wrapping_add(input_word);
    }
    state
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Key 00:01:...:1f as little-endian words, as in RFC 8439, section 2.3.2.
    fn rfc_key() -> [u32; 8] {
        let bytes: Vec<u8> = (0u8..32).collect();
        std::array::from_fn(|i| u32::from_le_bytes(bytes[4 * i..4 * i + 4].try_into().unwrap()))
    }

    #[test]
    fn block_matches_rfc8439_test_vector() {
        // RFC 8439, section 2.3.2: nonce 00:00:00:09:00:00:00:4a:00:00:00:00, block count 1, and
        // the printed "ChaCha state at the end of the ChaCha20 operation".
        let nonce = [0x0900_0000, 0x4a00_0000, 0x0000_0000];
        let expected = [
            0xe4e7_f110,
            0x1559_3bd1,
            0x1fdd_0f50,
            0xc471_20a3,
            0xc7f4_d1c7,
            0x0368_c033,
            0x9aaa_2204,
            0x4e6c_d4c3,
            0x4664_82d2,
            0x09aa_9f07,
            0x05d7_c214,
            0xa202_8bd9,
            0xd19c_12b5,
            0xb94e_16de,
            0xe883_d0cb,
            0x4e3c_50a2,
        ];
        assert_eq!(block(&rfc_key(), 1, &nonce), expected);
    }
}
