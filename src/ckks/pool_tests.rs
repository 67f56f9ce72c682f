//! Tests of the limb pool in the evaluator (issue 14): limbs handed out again are fully
//! overwritten (no stale residue reaches a result) and the retained bytes respect the cap.
//! Every parameter set here is INSECURE (N = 2^10); the reference evaluator shares the keys
//! but recycles nothing (a pool of cap 0: every limb freshly allocated and zeroed).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;

use super::bootstrap_tests::{insecure_params_scale, keys, Keys};
use super::pool::LimbPool;
use super::ring::pool_cap_bytes;
use super::*;

const N: usize = 1024;

/// The pieces of a test: keys, the bootstrapper, the evaluator that recycles nothing, the
/// pooled one, and two rotation steps with keys at the top level.
type Setup = (Keys, Bootstrapper, Evaluator, Evaluator, [i64; 2]);

/// Keys for INSECURE N = 2^10 bootstrapping (encapsulated, full slots) plus two rotations at
/// the top level (the first steps the bootstrapper has no key for: its keys are made for
/// lower levels), the bootstrapper, and two evaluators with these keys: one whose context
/// recycles nothing, one whose context has a pool of `cap` bytes (None: the default cap).
fn setup(cap: Option<u64>) -> Setup {
    let config = BootstrapConfig::encapsulated(N).unwrap();
    let params = insecure_params_scale(10, 1, config.depth(), 50);
    let mut k = keys(params.clone(), 71);
    let b = Bootstrapper::new(&k.ctx, config).unwrap();
    let mut gk = b
        .generate_keys(&k.ctx, &k.sk, u64::MAX, &mut k.rng)
        .unwrap();
    let top = k.ctx.params().max_level();
    let enc = k.ctx.encoder();
    let free: Vec<i64> = (1..N as i64 / 2)
        .filter(|&r| {
            let g = enc.galois_element(r);
            b.key_plan().iter().all(|&(e, _, _)| e != g)
        })
        .take(2)
        .collect();
    let steps = [free[0], free[1]];
    let els: Vec<(usize, usize)> = steps
        .iter()
        .map(|&r| (enc.galois_element(r), top))
        .collect();
    gk.generate_elements(&k.ctx, &k.sk, &els, &mut k.rng);
    let rk = RelinKey::generate(&k.ctx, &k.sk, &mut k.rng);
    let reference = CkksContext::with_pool_cap(params.clone(), 0).unwrap();
    let pooled = match cap {
        Some(c) => CkksContext::with_pool_cap(params, c).unwrap(),
        None => CkksContext::new(params).unwrap(),
    };
    let ev_ref = Evaluator::new(reference, Some(rk.clone()), gk.clone()).unwrap();
    let ev = Evaluator::new(pooled, Some(rk), gk).unwrap();
    (k, b, ev_ref, ev, steps)
}

/// Fill the pool to its cap with limbs of u64::MAX (no residue of any prime: a stale entry
/// that reached a result would make it differ from the reference).
fn poison(pool: &LimbPool) {
    let limb = 8 * N as u64;
    let held = pool.retained_bytes() / limb;
    let cap = pool.cap_bytes() / limb;
    let mut v: Vec<Vec<u64>> = (0..held).map(|_| pool.take()).collect();
    for l in &mut v {
        l.fill(u64::MAX);
    }
    v.extend((held..cap).map(|_| vec![u64::MAX; N]));
    pool.put_all(v);
    assert_eq!(pool.retained_bytes(), pool.cap_bytes());
}

fn input(k: &mut Keys, level: usize, seed: u64) -> (Vec<f64>, Ciphertext) {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let v: Vec<f64> = (0..N / 2).map(|_| rng.random_range(-1.0..1.0)).collect();
    let pt = k
        .ctx
        .encode(&v, level, k.ctx.params().scale(level))
        .unwrap();
    (v, k.ctx.encrypt(&k.pk, &pt, &mut k.rng).unwrap())
}

type Op<'a> = Box<dyn Fn(&Evaluator) -> Vec<Ciphertext> + 'a>;

/// Every operation that draws limbs from the pool (multiplication with relinearisation and
/// rescale, plain and hoisted rotations, conjugation, a level adjustment, the bootstrap with
/// encoded and with on-the-fly diagonals), run after poisoning the pool: bit for bit the
/// reference's ciphertexts, with limbs actually reused from the poisoned pool.
#[test]
fn poisoned_pool_leaks_nothing_into_results_insecure() {
    let (mut k, b, ev_ref, ev, [r1, r2]) = setup(None);
    let top = k.ctx.params().max_level();
    let (_, x) = input(&mut k, top, 1);
    let (_, y) = input(&mut k, top, 2);
    let (v, x0) = input(&mut k, 0, 3);
    // The conjugation key is the bootstrapper's, made for the level where it is used.
    let conj = b
        .key_plan()
        .iter()
        .find(|&&(e, _, _)| e == 2 * N - 1)
        .map(|&(_, _, l)| l)
        .unwrap();
    let xc = ev_ref.adjust_to(&x, conj).unwrap();
    let ops: Vec<(&str, Op<'_>)> = vec![
        ("mul", Box::new(|e| vec![e.mul(&x, &y).unwrap()])),
        ("rotate", Box::new(|e| vec![e.rotate(&x, r2).unwrap()])),
        (
            "rotate_hoisted",
            Box::new(|e| e.rotate_hoisted(&x, &[0, r1, r2]).unwrap()),
        ),
        ("conjugate", Box::new(|e| vec![e.conjugate(&xc).unwrap()])),
        ("adjust_to", Box::new(|e| vec![e.adjust_to(&x, 1).unwrap()])),
        (
            "bootstrap",
            Box::new(|e| vec![b.bootstrap(e, &x0).unwrap()]),
        ),
        (
            "bootstrap_uncached",
            Box::new(|e| vec![b.bootstrap_uncached(e, &x0).unwrap()]),
        ),
    ];
    let pool = &ev.context().ring().pool;
    for (name, op) in &ops {
        poison(pool);
        let before = pool.stats().reused;
        let got = op(&ev);
        let reused = pool.stats().reused - before;
        let want = op(&ev_ref);
        assert!(reused > 0, "{name}: no limb was reused");
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(&want) {
            assert_eq!(
                (g.level(), g.scale().to_bits()),
                (w.level(), w.scale().to_bits())
            );
            assert!(
                g.c == w.c,
                "{name}: ciphertexts differ ({reused} limbs reused)"
            );
        }
        eprintln!("{name}: {reused} poisoned limbs reused, ciphertexts bit-identical");
    }
    // The reference recycled nothing: each of its limbs was a fresh allocation.
    let r = ev_ref.context().pool_stats();
    assert_eq!((r.reused, r.retained_bytes, r.cap_bytes), (0, 0, 0));
    assert!(r.fresh > 0);
    // And the bootstrap is still right (the pooled result decrypts to the input).
    let out = b.bootstrap(&ev, &x0).unwrap();
    let got = k.ctx.decrypt_decode(&k.sk, &out).unwrap();
    let bits = -got
        .iter()
        .zip(&v)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max)
        .log2();
    assert!(bits >= 20.0, "{bits} bits");
}

/// The pool never retains more than its cap: the default cap (the one the bootstrapping
/// memory model adds) after bootstraps, and a cap of 5 limbs, which recycles little but gives
/// the same ciphertexts.
#[test]
fn pool_retains_at_most_its_cap_insecure() {
    let limb = 8 * N as u64;
    let (mut k, b, ev_ref, ev, _) = setup(None);
    let (_, x0) = input(&mut k, 0, 4);
    let model = b.key_memory(ev.context());
    let st = ev.context().pool_stats();
    assert_eq!(model.pool_bytes, st.cap_bytes);
    assert_eq!(st.cap_bytes, pool_cap_bytes(k.ctx.params()));
    let want = b.bootstrap(&ev_ref, &x0).unwrap();
    for _ in 0..2 {
        let got = b.bootstrap(&ev, &x0).unwrap();
        assert!(got.c == want.c);
        let st = ev.context().pool_stats();
        assert!(st.retained_bytes <= st.cap_bytes, "{st:?}");
        assert!(st.retained_bytes > 0 && st.reused > 0, "{st:?}");
    }
    let (mut k, b, ev_ref, ev, _) = setup(Some(5 * limb + limb / 2));
    let (_, x0) = input(&mut k, 0, 5);
    assert_eq!(ev.context().pool_stats().cap_bytes, 5 * limb);
    let got = b.bootstrap(&ev, &x0).unwrap();
    assert!(got.c == b.bootstrap(&ev_ref, &x0).unwrap().c);
    let st = ev.context().pool_stats();
    assert_eq!(st.retained_bytes, 5 * limb, "{st:?}");
}
