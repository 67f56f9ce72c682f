//! Tests of sparse-secret encapsulation (INSECURE N = 2^10 parameters: toy sizes for CI; the
//! code path is that of the secure parameters).

use std::sync::Arc;

use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;

use super::bootstrap_tests::{bootstrap_run, crt01, insecure_params_scale, keys, random_complex};
use super::ring::ModVal;
use super::*;

/// The exact Irwin–Hall tail against independent computations: h = 2 (triangular density on
/// [−1, 1]: P(|S| ≥ 1/2) = 2·(1/2)·(1/2)² = 1/4), h = 1 (P(|U| ≥ 1/2) = 0), and h = 32 at
/// |S| ≥ 11.5 from Python's exact `fractions` (2·F_32(4.5) = 6.01404901547734e−15,
/// log₂ = −47.2406); K for h = 32 is 12 (K = 11 would fail with 2^−38.04 > 2^−40).
#[test]
fn sparse_k_failure_probability_is_computed() {
    assert_eq!(irwin_hall_two_sided_tail(2, 1), 0.25);
    assert_eq!(irwin_hall_two_sided_tail(1, 1), 0.0);
    assert_eq!(irwin_hall_two_sided_tail(5, 0), 1.0);
    let p = irwin_hall_two_sided_tail(32, 23);
    assert!((p / 6.01404901547734e-15 - 1.0).abs() < 1e-12, "{p:e}");
    let p11 = irwin_hall_two_sided_tail(32, 21);
    assert!((p11.log2() + 38.038).abs() < 1e-3, "{p11:e}");
    let (k, log_p) = sparse_k(32);
    assert_eq!(k, 12.0);
    assert!((log_p + 47.2406).abs() < 1e-3, "{log_p}");
    assert!(log_p <= LOG2_FAIL_PER_COEFF);
    // Monotone in x, and a dense weight needs a much larger K.
    assert!(irwin_hall_two_sided_tail(32, 25) < p);
    assert!(sparse_k(192).0 > 20.0);
}

/// EvalMod for h = 32: K = 12, the approximation of sin(2πKu) on [−1, 1] near the f64 floor,
/// far fewer levels than for the dense secret at N = 2^16 (13).
#[test]
fn evalmod_for_sparse_secret_is_shallow() {
    let c = EvalModConfig::for_sparse_secret(32).unwrap();
    eprintln!(
        "h = 32: K = {}, degree {}, {} double angles, depth {}, max error {:e}",
        c.k,
        c.degree,
        c.double_angles,
        c.depth(),
        c.max_error()
    );
    assert_eq!(
        (c.k, c.degree, c.double_angles, c.depth()),
        (12.0, 47, 2, 8)
    );
    assert!(c.max_error() < 1e-11, "{:e}", c.max_error());
    let dense = EvalModConfig::for_ring(1 << 16).unwrap();
    assert!(
        c.depth() + 5 <= dense.depth(),
        "{} vs {}",
        c.depth(),
        dense.depth()
    );
    let cfg = BootstrapConfig::encapsulated(1 << 16).unwrap();
    assert_eq!(cfg.sparse_secret, Some(EPHEMERAL_WEIGHT));
    assert_eq!(cfg.depth(), 3 + c.depth() + 3);
    assert!(EvalModConfig::for_sparse_secret(0).is_err());
}

/// s → s' at level 0 then s' → s decrypts to the same message within the key-switching
/// noise; after ModRaise under s' the overflow I of t = m + q_0·I stays below K = 12 (and far
/// below the dense K = 62 of N = 2^10).
#[test]
fn encapsulation_round_trip_and_small_overflow_insecure() {
    let mut k = keys(insecure_params_scale(10, 2, 3, 40), 51);
    let ev0 = k.evaluator(&[], false);
    let mut gk = GaloisKeys::default();
    let enc = EncapsulationKeys::generate(&k.ctx, &k.sk, 32, &mut k.rng).unwrap();
    assert_eq!(enc.weight(), 32);
    assert_eq!(
        enc.size_bytes() as u64,
        EncapsulationKeys::model_bytes(k.ctx.params())
    );
    gk.set_encapsulation(enc);
    let ev = Evaluator::new(Arc::clone(&k.ctx), None, gk).unwrap();
    let z = random_complex(&mut k.rng, 512);
    let ct = k.enc_complex(&z);
    let ct0 = ev0.adjust_to(&ct, 0).unwrap();
    let keys_e = ev.galois_keys().encapsulation().unwrap();
    let sparse = ev.switch_to_sparse(&ct0, keys_e).unwrap();
    // Under s' the ciphertext no longer decrypts with s.
    let wrong = k.ctx.decrypt(&k.sk, &sparse).unwrap();
    let want = k.ctx.decrypt(&k.sk, &ct0).unwrap();
    assert!(wrong.limbs != want.limbs);
    let back = ev.switch_to_dense(&sparse, keys_e).unwrap();
    let got = k.ctx.decrypt(&k.sk, &back).unwrap();
    let ring = k.ctx.ring();
    let q0 = ring.moduli[0].val();
    let (mut a, mut b) = (want.limbs.clone(), got.limbs.clone());
    ring.to_coeffs(&mut a, &[0]);
    ring.to_coeffs(&mut b, &[0]);
    let worst = a[0]
        .iter()
        .zip(&b[0])
        .map(|(&x, &y)| {
            let d = (i128::from(x) - i128::from(y)).rem_euclid(i128::from(q0));
            d.min(i128::from(q0) - d)
        })
        .max()
        .unwrap();
    // Switching noise: rounding (≤ h/2 + 1/2 per coefficient, twice) and c_1·e/p_0 terms;
    // a few thousand against Δ_0 = 2^40.
    eprintln!("round trip s → s' → s: max coefficient difference {worst}");
    assert!(worst < 1 << 14, "{worst}");
    // ModRaise under s', back to s: t = m + q_0·I with |I| < 12.
    let raised = ev
        .switch_to_dense(&ev.mod_raise(&sparse).unwrap(), keys_e)
        .unwrap();
    let t = crt01(&k, &k.ctx.decrypt(&k.sk, &raised).unwrap());
    let m: Vec<i128> = b[0]
        .iter()
        .map(|&x| i128::from(x) - if x > q0 / 2 { i128::from(q0) } else { 0 })
        .collect();
    let mut max_i = 0i128;
    for (ti, mi) in t.iter().zip(&m) {
        let d = ti - mi;
        // The switch back adds its own small noise: I is the rounded quotient.
        let i = (d as f64 / q0 as f64).round() as i128;
        assert!((d - i * i128::from(q0)).abs() < 1 << 14);
        max_i = max_i.max(i.abs());
    }
    eprintln!("max |I| under s' (h = 32) = {max_i}");
    assert!(max_i > 0 && max_i < 12, "{max_i}");
    // Wrong level and missing keys: clear errors.
    assert!(ev.switch_to_sparse(&ct, keys_e).is_err());
    assert_eq!(
        CkksError::MissingEncapsulationKeys.to_string(),
        "bootstrapping with sparse-secret encapsulation needs the s → s' and s' → s switching \
         keys; none were given (generate them with Bootstrapper::generate_keys or \
         Bootstrapper::add_encapsulation_keys)"
    );
}

/// Bootstrapping with encapsulation restores a level-0 ciphertext to the stated level (2 user
/// levels above q_0) at the measured precision, full and sparse slots; the dense run of the
/// same seeds for comparison.
#[test]
fn bootstrap_with_encapsulation_insecure() {
    for (slots, cts, stc, seed, min_bits) in [(512, 2, 2, 21, 23.0), (32, 2, 1, 22, 21.0)] {
        let (b, level, bits) = bootstrap_run(slots, cts, stc, 50, seed, Some(32));
        let (bd, _, dense_bits) = bootstrap_run(slots, cts, stc, 50, seed, None);
        eprintln!(
            "{slots} slots, N = 2^10 INSECURE, encapsulated h = 32: depth {} (EvalMod {}), \
             output level {level}, precision {bits:.1} bits; dense: depth {}, {dense_bits:.1} bits",
            b.depth(),
            b.eval_mod_depth(),
            bd.depth()
        );
        assert_eq!(level, b.output_level());
        assert!(b.depth() < bd.depth());
        assert!(bits >= min_bits, "precision {bits:.1} bits");
    }
}

/// Without the encapsulation keys an encapsulated bootstrap is refused with the clear error.
#[test]
fn bootstrap_without_encapsulation_keys_is_refused_insecure() {
    let cfg = BootstrapConfig::encapsulated(1024).unwrap();
    let mut k = keys(insecure_params_scale(10, 1, cfg.depth(), 50), 52);
    let b = Bootstrapper::new(&k.ctx, cfg).unwrap();
    let ev = k.evaluator(&[], false);
    let pt = k.ctx.encode(&[0.5; 4], 0, k.ctx.params().scale(0)).unwrap();
    let ct0 = k
        .ctx
        .encrypt(&k.pk, &pt, &mut ChaCha20Rng::seed_from_u64(3))
        .unwrap();
    let e = b.bootstrap(&ev, &ct0).unwrap_err();
    assert_eq!(e, CkksError::MissingEncapsulationKeys);
}

/// The 128-bit parameter set of the encapsulated bench at N = 2^16: depth 3 + 8 + 3 = 14,
/// Δ_0 = 2^54, q_0 of 60 bits and four 61-bit special primes leave
/// ⌊(1772 − 1 − 60 − 14·60 − 4·61)/54⌋ = ⌊627/54⌋ = 11 user levels (5 with the dense secret at
/// Δ_0 = 2^57: depth 19).
#[test]
fn encapsulated_params_leave_eleven_levels() {
    let cfg = BootstrapConfig::encapsulated(1 << 16).unwrap();
    assert_eq!(cfg.depth(), 14);
    let p = bootstrap_params(16, cfg.depth(), 54, None, 4, false).unwrap();
    assert_eq!(p.security(), SecurityLevel::Bits128);
    assert!(p.log_qp() <= 1772.0);
    assert_eq!(p.max_level(), 11 + 14);
    let dense = BootstrapConfig::full(1 << 16).unwrap();
    let pd = bootstrap_params(16, dense.depth(), 57, None, 4, false).unwrap();
    assert_eq!(pd.max_level() - dense.depth(), 5);
}
