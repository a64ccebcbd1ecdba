//! Tier 4: every decoder fed with mutated valid inputs and random bytes must return a value or
//! an error, never panic. Deterministic (a fixed-seed generator), so CI runs are repeatable; the
//! seeds cover truncations, byte flips, insertions and splices of real packets.

use bytes::Bytes;
use ferrio::protocol::cluster::{BroadcastMessage, MirrorMessage, Request, Response};
use ferrio::protocol::{engineio, socketio};

/// A small xorshift generator: no dependency, same sequence on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const SEEDS: &[&[u8]] = &[
    b"0",
    b"40",
    b"40/admin,{\"token\":\"t\"}",
    b"42[\"chat\",\"hi\"]",
    b"4212[\"chat\",{\"a\":[1,2,{\"b\":null}]}]",
    b"42/admin,12[\"chat\"]",
    b"43456[1,\"2\",{\"3\":[false]}]",
    b"452-[\"upload\",{\"_placeholder\":true,\"num\":0},{\"_placeholder\":true,\"num\":1}]",
    b"461-12[{\"_placeholder\":true,\"num\":0}]",
    b"44{\"message\":\"Invalid namespace\"}",
    b"41/custom,",
    b"2probe",
    b"3",
    b"5",
    b"6",
    b"4hello\x1ebAQIDBA==",
];

fn mutate(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
    let mut v = seed.to_vec();
    for _ in 0..=rng.below(4) {
        match rng.below(5) {
            0 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] = rng.next() as u8;
            }
            1 => {
                let i = rng.below(v.len() + 1);
                let b = b"{}[],\"0123456789-/_:\x1eb"[rng.below(22)];
                v.insert(i, b);
            }
            2 if !v.is_empty() => {
                let i = rng.below(v.len());
                v.truncate(i);
            }
            3 => {
                let other = SEEDS[rng.below(SEEDS.len())];
                let i = rng.below(v.len() + 1);
                v.splice(i..i, other.iter().copied());
            }
            _ => {
                let n = rng.below(8);
                v.extend((0..n).map(|_| rng.next() as u8));
            }
        }
    }
    v
}

#[test]
fn engineio_and_socketio_decoders_never_panic_on_mutated_packets() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for _ in 0..50_000 {
        let seed = SEEDS[rng.below(SEEDS.len())];
        let input = mutate(&mut rng, seed);
        let _ = engineio::decode_payload(&input);
        if let Ok(text) = std::str::from_utf8(&input) {
            let _ = engineio::decode_text(text);
            let sio = text.strip_prefix('4').unwrap_or(text);
            let _ = socketio::decode(sio);
            let mut d = socketio::Decoder::new();
            let _ = d.feed_text(sio);
            let _ = d.feed_binary(Bytes::from(input.clone()));
            let _ = d.feed_text(sio);
        }
    }
}

#[test]
fn cluster_decoders_never_panic_on_random_or_mutated_bytes() {
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let seeds: Vec<Vec<u8>> = vec![
        // ["uid", {"type":2,"data":["a",1],"nsp":"/"}, {"rooms":[],"except":[],"flags":{}}]
        vec![
            0x93, 0xa3, b'u', b'i', b'd', 0x83, 0xa4, b't', b'y', b'p', b'e', 0x02, 0xa4, b'd',
            b'a', b't', b'a', 0x92, 0xa1, b'a', 0x01, 0xa3, b'n', b's', b'p', 0xa1, b'/', 0x83,
            0xa5, b'r', b'o', b'o', b'm', b's', 0x90, 0xa6, b'e', b'x', b'c', b'e', b'p', b't',
            0x90, 0xa5, b'f', b'l', b'a', b'g', b's', 0x80,
        ],
        br#"{"uid":"FoGlaV","type":2,"opts":{"rooms":["room2"],"except":[]},"rooms":["room3"]}"#
            .to_vec(),
        br#"{"uid":"FoGlaV","requestId":"J91NX6","type":1}"#.to_vec(),
        br#"{"requestId":"J91NX6","rooms":["a","b"]}"#.to_vec(),
        br#"{"type":8,"requestId":"x","clientCount":1}"#.to_vec(),
        br#"{"v":1,"type":"join-room","node":"n1","seq":8,"nsp":"/","room":"r","socket":"s"}"#
            .to_vec(),
    ];
    for _ in 0..50_000 {
        let input = if rng.below(10) == 0 {
            (0..rng.below(64)).map(|_| rng.next() as u8).collect()
        } else {
            let seed = &seeds[rng.below(seeds.len())];
            mutate(&mut rng, seed)
        };
        let _ = BroadcastMessage::decode(&input);
        let _ = Request::decode(&input);
        let _ = Response::decode(&input);
        let _ = MirrorMessage::decode(&input);
    }
}
