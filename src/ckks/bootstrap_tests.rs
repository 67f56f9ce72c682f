//! Tests of hoisted rotations, slot linear transforms, the homomorphic special DFT, EvalMod and
//! bootstrapping. Every parameter set here is INSECURE (N = 2^10 with ~1000-bit moduli): toy
//! sizes for CI; the code path is the one of secure parameters (dense uniform ternary secret).

use std::ops::{Add, Mul, Sub};
use std::sync::Arc;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;

use super::ring::ModVal;
use super::*;

/// INSECURE chain: q_0 of 60 bits, `user` primes of 40 bits, `boot` primes of 60 bits, three
/// 61-bit special primes, Δ_0 = 2^40.
fn insecure_params(log_n: u32, user: usize, boot: usize) -> CkksParams {
    insecure_params_scale(log_n, user, boot, 40)
}

/// As [`insecure_params`] with Δ_0 = 2^scale_bits and user primes of that size.
pub(super) fn insecure_params_scale(
    log_n: u32,
    user: usize,
    boot: usize,
    scale_bits: u32,
) -> CkksParams {
    let mut q = vec![60u32];
    q.extend(std::iter::repeat_n(scale_bits, user));
    q.extend(std::iter::repeat_n(60, boot));
    CkksParamsBuilder::new()
        .log_n(log_n)
        .q_bits(&q)
        .p_bits(&[61, 61, 61])
        .scale_bits(scale_bits)
        .insecure(true)
        .build()
        .unwrap()
}

pub(super) struct Keys {
    pub(super) ctx: Arc<CkksContext>,
    pub(super) sk: SecretKey,
    pub(super) pk: PublicKey,
    pub(super) rng: ChaCha20Rng,
}

pub(super) fn keys(params: CkksParams, seed: u64) -> Keys {
    assert_eq!(params.security(), SecurityLevel::Insecure);
    let ctx = CkksContext::new(params).unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let sk = SecretKey::generate(&ctx, &mut rng);
    let pk = PublicKey::generate(&ctx, &sk, &mut rng);
    Keys { ctx, sk, pk, rng }
}

impl Keys {
    pub(super) fn evaluator(&mut self, steps: &[i64], conj: bool) -> Evaluator {
        let rk = RelinKey::generate(&self.ctx, &self.sk, &mut self.rng);
        let mut gk = GaloisKeys::generate(&self.ctx, &self.sk, steps, &mut self.rng);
        if conj {
            let top = self.ctx.params().max_level();
            let g = 2 * self.ctx.params().n() - 1;
            gk.generate_elements(&self.ctx, &self.sk, &[(g, top)], &mut self.rng);
        }
        Evaluator::new(Arc::clone(&self.ctx), Some(rk), gk).unwrap()
    }
    pub(super) fn enc_complex(&mut self, z: &[Complex]) -> Ciphertext {
        let top = self.ctx.params().max_level();
        let pt = self
            .ctx
            .encode_complex(z, top, self.ctx.params().scale(top))
            .unwrap();
        self.ctx.encrypt(&self.pk, &pt, &mut self.rng).unwrap()
    }
    fn dec_complex(&self, ct: &Ciphertext) -> Vec<Complex> {
        let pt = self.ctx.decrypt(&self.sk, ct).unwrap();
        self.ctx.decode_complex(&pt).unwrap()
    }
}

pub(super) fn random_complex(rng: &mut ChaCha20Rng, n: usize) -> Vec<Complex> {
    (0..n)
        .map(|_| Complex::new(rng.random_range(-1.0..1.0), rng.random_range(-1.0..1.0)))
        .collect()
}

/// max_j |a_j − b_{j mod |b|}| over all of a (b repeated: periodic slots).
fn max_err_periodic(a: &[Complex], b: &[Complex]) -> f64 {
    a.iter()
        .enumerate()
        .map(|(j, x)| x.sub(b[j % b.len()]).abs())
        .fold(0.0, f64::max)
}

/// Independent O(p²) special DFT: z_j = Σ_i w_i·ζ^{5^j·i}, ζ = e^{iπ/(2p)}.
fn naive_special_dft(w: &[Complex]) -> Vec<Complex> {
    let p = w.len();
    let m = 4 * p;
    let mut g = 1usize;
    let mut out = Vec::with_capacity(p);
    for _ in 0..p {
        let mut s = Complex::default();
        for (i, wi) in w.iter().enumerate() {
            let e = (g * i) % m;
            s = s.add(wi.mul(Complex::expi(std::f64::consts::TAU * e as f64 / m as f64)));
        }
        out.push(s);
        g = g * 5 % m;
    }
    out
}

fn bit_reversed(v: &[Complex]) -> Vec<Complex> {
    (0..v.len())
        .map(|i| v[bit_reverse_index(i, v.len())])
        .collect()
}

fn apply_all(lts: &[LinearTransform], x: &[Complex]) -> Vec<Complex> {
    lts.iter().fold(x.to_vec(), |v, lt| lt.apply(&v))
}

#[test]
fn hoisted_rotations_equal_plain_rotations_insecure() {
    let mut k = keys(insecure_params(10, 3, 0), 11);
    let steps = [1i64, 2, 5, -3, 100, 0];
    let ev = k.evaluator(&steps, true);
    let z = random_complex(&mut k.rng, 512);
    let ct = k.enc_complex(&z);
    let hoisted = ev.rotate_hoisted(&ct, &steps).unwrap();
    for (h, &r) in hoisted.iter().zip(&steps) {
        // Bit for bit: one rotation is the hoisted path with one step.
        let plain = ev.rotate(&ct, r).unwrap();
        assert_eq!(h.c, plain.c, "step {r}");
        // And the slots are rotated (left by r).
        let got = k.dec_complex(h);
        let want: Vec<Complex> = (0..512)
            .map(|j| z[(j as i64 + r).rem_euclid(512) as usize])
            .collect();
        let e = max_err_periodic(&got, &want);
        assert!(e < 1e-6, "step {r}: error {e:e}");
    }
    // Composition: rot(rot(x, 2), -3) decrypts like rot(x, -1)... within noise.
    let two = ev.rotate(&hoisted[1], -3).unwrap();
    let want: Vec<Complex> = (0..512).map(|j| z[(j + 511) % 512]).collect();
    assert!(max_err_periodic(&k.dec_complex(&two), &want) < 1e-6);
    // Conjugation and multiplication by i.
    let c = ev.conjugate(&ct).unwrap();
    let zc: Vec<Complex> = z.iter().map(|x| x.conj()).collect();
    assert!(max_err_periodic(&k.dec_complex(&c), &zc) < 1e-6);
    // Multiplication by i^p is exact: compare with the decryption of ct itself.
    let d = k.dec_complex(&ct);
    for p in 0..4 {
        let m = ev.mul_i_pow(&ct, p).unwrap();
        let ip = [(1.0, 0.0), (0.0, 1.0), (-1.0, 0.0), (0.0, -1.0)][p as usize];
        let want: Vec<Complex> = d.iter().map(|x| x.mul(Complex::new(ip.0, ip.1))).collect();
        assert!(max_err_periodic(&k.dec_complex(&m), &want) < 1e-12);
    }
    // A missing key is a clear error.
    let e = ev.rotate_hoisted(&ct, &[1, 7]).unwrap_err();
    assert!(
        matches!(e, CkksError::MissingGaloisKey { step: 7, .. }),
        "{e}"
    );
}

#[test]
fn linear_transform_matches_plaintext_matvec_insecure() {
    let mut k = keys(insecure_params(10, 3, 0), 12);
    let mut rng = ChaCha20Rng::seed_from_u64(5);
    // (1) A dense random 32×32 matrix on 32-periodic slots.
    let p = 32;
    let rows: Vec<Vec<Complex>> = (0..p).map(|_| random_complex(&mut rng, p)).collect();
    let dense = LinearTransform::from_dense(&rows).unwrap();
    assert_eq!(dense.diagonal_indices().len(), p);
    // (2) A sparse-diagonal matrix on all 512 slots, negative offsets included.
    let mut diags = std::collections::BTreeMap::new();
    for k in [0usize, 1, 3, 16, 17, 511, 507, 256] {
        diags.insert(k, random_complex(&mut rng, 512));
    }
    let sparse = LinearTransform::new(512, diags).unwrap();
    let mut steps: Vec<i64> = dense.rotation_steps();
    steps.extend(sparse.rotation_steps());
    let ev = k.evaluator(&steps, false);
    for (lt, period) in [(&dense, p), (&sparse, 512)] {
        let x = random_complex(&mut rng, period);
        // The plaintext product, checked against the dense definition y_r = Σ_c M[r][c]·x_c.
        let want = lt.apply(&x);
        if period == p {
            for (r, row) in rows.iter().enumerate() {
                let y = row
                    .iter()
                    .zip(&x)
                    .fold(Complex::default(), |s, (a, b)| s.add(a.mul(*b)));
                assert!(y.sub(want[r]).abs() < 1e-12);
            }
        }
        let ct = k.enc_complex(&x);
        let out = ev.linear_transform(&ct, lt).unwrap();
        assert_eq!(out.level(), ct.level() - 1);
        assert_eq!(out.scale(), k.ctx.params().scale(out.level()));
        let e = max_err_periodic(&k.dec_complex(&out), &want);
        // Inputs |x| < √2, ≤ 32 terms of |M| < √2: values up to ~64; noise ~2^−25 relative.
        assert!(e < 1e-5, "period {period}: error {e:e}");
    }
}

#[test]
fn dft_stages_equal_special_fft() {
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let enc = Encoder::new(1024);
    for p in [2usize, 8, 64, 512] {
        let log = p.trailing_zeros() as usize;
        let w = random_complex(&mut rng, p);
        let z = naive_special_dft(&w);
        // The encoder's FFT is the same map (an independent implementation).
        let mut zf = w.clone();
        enc.special_fft(&mut zf);
        assert!(max_err_periodic(&zf, &z) < 1e-9);
        for period in [p, 2 * p] {
            for budget in 1..=log {
                let cts = coeff_to_slot_stages(p, period, budget).unwrap();
                let stc = slot_to_coeff_stages(p, period, budget).unwrap();
                assert_eq!((cts.len(), stc.len()), (budget, budget));
                // A group of r stages has at most 2^{r+1} − 1 diagonals.
                let r = log.div_ceil(budget) as u32;
                for lt in cts.iter().chain(&stc) {
                    assert!(lt.diagonal_indices().len() < 1 << (r + 1));
                }
                let zp: Vec<Complex> = (0..period).map(|i| z[i % p]).collect();
                // CoeffToSlot: w in bit-reversed order (on both halves of a 2p period).
                let got = apply_all(&cts, &zp);
                let e = max_err_periodic(&got, &bit_reversed(&w));
                assert!(e < 1e-9, "CtS p {p} period {period} budget {budget}: {e:e}");
                // SlotToCoeff on the bit-reversed coefficients: z.
                let wb: Vec<Complex> = (0..period).map(|i| bit_reversed(&w)[i % p]).collect();
                let e = max_err_periodic(&apply_all(&stc, &wb), &z);
                assert!(e < 1e-9, "StC p {p} period {period} budget {budget}: {e:e}");
            }
        }
    }
    assert!(coeff_to_slot_stages(8, 8, 4).is_err());
    assert!(coeff_to_slot_stages(8, 4, 1).is_err());
}

#[test]
fn coeff_to_slot_then_slot_to_coeff_is_identity_insecure() {
    let mut k = keys(insecure_params(10, 0, 6), 13);
    let mut rng = ChaCha20Rng::seed_from_u64(8);
    for (p, budget) in [(512usize, 3usize), (32, 2)] {
        let cts = coeff_to_slot_stages(p, p, budget).unwrap();
        let stc = slot_to_coeff_stages(p, p, budget).unwrap();
        let steps: Vec<i64> = cts
            .iter()
            .chain(&stc)
            .flat_map(LinearTransform::rotation_steps)
            .collect();
        let ev = k.evaluator(&steps, false);
        let z = random_complex(&mut rng, p);
        let ct = k.enc_complex(&z);
        let mut x = ct.clone();
        for lt in &cts {
            x = ev.linear_transform(&x, lt).unwrap();
        }
        // CoeffToSlot alone: the inverse special FFT (bit-reversed), via the encoder's FFT.
        let mut w = z.clone();
        k.ctx.encoder().special_fft_inv(&mut w);
        let e_cts = max_err_periodic(&k.dec_complex(&x), &bit_reversed(&w));
        for lt in &stc {
            x = ev.linear_transform(&x, lt).unwrap();
        }
        assert_eq!(x.level(), ct.level() - 2 * budget);
        let e = max_err_periodic(&k.dec_complex(&x), &z);
        eprintln!("p = {p}, budget {budget}: CtS error {e_cts:.2e}, StC∘CtS error {e:.2e}");
        assert!(e_cts < 1e-7 && e < 1e-7, "{e_cts:e} {e:e}");
    }
}

#[test]
fn evalmod_plan_approximates_scaled_sine() {
    // K for N = 2^10: ⌈1 + 6.5·√(1024/12)⌉ = ⌈61.04⌉ = 62.
    let c = EvalModConfig::for_ring(1024).unwrap();
    assert_eq!(c.k, 62.0);
    let plan = c.plan();
    // Depth: ⌈log₂(d + 1)⌉ for the Chebyshev BSGS (degree 95: 7), plus one per double angle.
    assert_eq!(c.degree, 95);
    let d = c.degree;
    let cheb = (usize::BITS - d.leading_zeros()) as usize;
    assert_eq!(c.depth(), cheb + 3, "degree {d}");
    let mut worst = 0.0f64;
    for i in 0..=2000 {
        let u = -1.0 + i as f64 / 1000.0;
        let want = (std::f64::consts::TAU * 62.0 * u).sin();
        worst = worst.max((plan.eval(&u) - want).abs());
    }
    assert!(worst < 1e-11, "plan error {worst:e}");
    assert!(EvalModConfig::with_k(0.5, 3).is_err());
}

/// CRT of limbs 0 and 1 of a decrypted plaintext (coefficient form), centred mod q_0·q_1.
pub(super) fn crt01(k: &Keys, pt: &Plaintext) -> Vec<i128> {
    let ring = k.ctx.ring();
    let mut l: Vec<Vec<u64>> = pt.limbs[..2].to_vec();
    ring.to_coeffs(&mut l, &[0, 1]);
    let (q0, q1) = (ring.moduli[0].val(), ring.moduli[1].val());
    let m1 = &ring.moduli[1];
    let inv = m1.inv(m1.reduce(q0)).unwrap();
    let big = i128::from(q0) * i128::from(q1);
    l[0].iter()
        .zip(&l[1])
        .map(|(&a0, &a1)| {
            let d = m1.mul(m1.sub(a1, m1.reduce(a0)), inv);
            let t = i128::from(a0) + i128::from(q0) * i128::from(d);
            if t > big / 2 {
                t - big
            } else {
                t
            }
        })
        .collect()
}

#[test]
fn mod_raise_overflow_is_within_k_insecure() {
    let mut k = keys(insecure_params(10, 2, 4), 14);
    let ev = k.evaluator(&[], false);
    let z = random_complex(&mut k.rng, 512);
    let ct = k.enc_complex(&z);
    let ct0 = ev.adjust_to(&ct, 0).unwrap();
    let raised = ev.mod_raise(&ct0).unwrap();
    assert_eq!(raised.level(), k.ctx.params().max_level());
    // m: the level-0 decryption, centred mod q_0.
    let mut m0 = k.ctx.decrypt(&k.sk, &ct0).unwrap().limbs;
    k.ctx.ring().to_coeffs(&mut m0, &[0]);
    let q0u = k.ctx.ring().moduli[0].val();
    let m: Vec<i128> = m0[0]
        .iter()
        .map(|&x| i128::from(x) - if x > q0u / 2 { i128::from(q0u) } else { 0 })
        .collect();
    let t = crt01(&k, &k.ctx.decrypt(&k.sk, &raised).unwrap());
    let q0 = i128::from(k.ctx.ring().moduli[0].val());
    let kb = EvalModConfig::for_ring(1024).unwrap().k;
    let mut max_i = 0i128;
    for (ti, mi) in t.iter().zip(&m) {
        assert_eq!((ti - mi) % q0, 0, "t ≡ m mod q_0");
        max_i = max_i.max(((ti - mi) / q0).abs());
    }
    eprintln!("max |I| = {max_i} (K = {kb}, std √(h/12) ≈ 7.5)");
    assert!((max_i as f64) < kb && max_i > 0);
    assert!(ev.mod_raise(&ct).is_err());
}

/// Bootstrap a message in [−1, 1] from level 0; returns (output level, precision in bits =
/// −log₂ max |error|).
pub(super) fn bootstrap_run(
    slots: usize,
    cts: usize,
    stc: usize,
    scale_bits: u32,
    seed: u64,
    sparse_secret: Option<usize>,
) -> (Bootstrapper, usize, f64) {
    let n = 1024;
    let em = match sparse_secret {
        None => EvalModConfig::for_ring(n).unwrap(),
        Some(h) => EvalModConfig::for_sparse_secret(h).unwrap(),
    };
    let boot = cts + em.depth() + stc;
    let mut k = keys(insecure_params_scale(10, 2, boot, scale_bits), seed);
    let config = BootstrapConfig {
        slots,
        cts_levels: cts,
        stc_levels: stc,
        eval_mod: em,
        sparse_secret,
    };
    let b = Bootstrapper::new(&k.ctx, config).unwrap();
    assert_eq!(b.output_level(), 2);
    let model = b.key_memory(&k.ctx);
    let gk = b
        .generate_keys(&k.ctx, &k.sk, u64::MAX, &mut k.rng)
        .unwrap();
    // The memory model is exact.
    assert_eq!(
        gk.size_bytes() as u64,
        model.total_bytes - model.relin_bytes
    );
    let rk = RelinKey::generate(&k.ctx, &k.sk, &mut k.rng);
    assert_eq!(rk.0.size_bytes() as u64, model.relin_bytes);
    let ev = Evaluator::new(Arc::clone(&k.ctx), Some(rk), gk).unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(seed + 100);
    let v: Vec<f64> = (0..slots).map(|_| rng.random_range(-1.0..1.0)).collect();
    // p slots repeated over N/2: a sparsely packed message.
    let full: Vec<f64> = (0..n / 2).map(|j| v[j % slots]).collect();
    let top = k.ctx.params().max_level();
    let pt = k.ctx.encode(&full, top, k.ctx.params().scale(top)).unwrap();
    let ct = k.ctx.encrypt(&k.pk, &pt, &mut k.rng).unwrap();
    let ct0 = ev.adjust_to(&ct, 0).unwrap();
    assert_eq!(ct0.level(), 0);
    let out = b.bootstrap(&ev, &ct0).unwrap();
    let got = k.ctx.decrypt_decode(&k.sk, &out).unwrap();
    let err = got
        .iter()
        .enumerate()
        .map(|(j, g)| (g - v[j % slots]).abs())
        .fold(0.0, f64::max);
    let level = out.level();
    // The result computes on: one more multiplication at the restored level.
    let sq = ev.mul(&out, &out).unwrap();
    let got2 = k.ctx.decrypt_decode(&k.sk, &sq).unwrap();
    let err2 = got2
        .iter()
        .enumerate()
        .map(|(j, g)| (g - v[j % slots] * v[j % slots]).abs())
        .fold(0.0, f64::max);
    assert!(err2 < 4.0 * err + 1e-6, "square after bootstrap: {err2:e}");
    (b, level, -err.log2())
}

/// Bootstrap and assert the stated level and precision.
fn check_bootstrap(slots: usize, cts: usize, stc: usize, seed: u64, min_bits: f64) {
    let (b, level, bits) = bootstrap_run(slots, cts, stc, 50, seed, None);
    eprintln!(
        "{slots} slots, N = 2^10 INSECURE: depth {} (EvalMod {}), output level {level}, \
         precision {bits:.1} bits",
        b.depth(),
        b.eval_mod_depth()
    );
    assert_eq!(level, b.output_level());
    assert!(bits >= min_bits, "precision {bits:.1} bits");
}

#[test]
fn bootstrap_full_slots_insecure() {
    // Δ_0 = 2^50, q_0 ≈ 2^60 (q_0/Δ_0 = 2^10, the best ratio measured here: 2^20 gives
    // 15.0 bits, 2^6 gives 18.6). Measured over seeds 21, 31, 41: 24.6, 24.7, 24.8 bits
    // (level budget 3/3: 24.7–24.9; 1/1: 21.6–21.8).
    check_bootstrap(512, 2, 2, 21, 23.0);
}

#[test]
fn bootstrap_sparse_slots_insecure() {
    // Measured over seeds 21, 31, 41: 23.4, 22.4, 22.7 bits (p = 128: 24.2–24.5; p = 4:
    // 20.8–21.1, where the message coefficients are larger and the sine's cubic bias
    // (2π·m/q_0)²/6 dominates).
    check_bootstrap(32, 2, 1, 22, 21.0);
}

#[test]
fn bootstrap_refuses_keys_beyond_memory_insecure() {
    let mut k = keys(insecure_params(10, 2, 20), 23);
    let b = Bootstrapper::new(&k.ctx, BootstrapConfig::full(1024).unwrap()).unwrap();
    let m = b.key_memory(&k.ctx);
    let text = m.to_string();
    assert!(text.starts_with("bootstrapping keys: "), "{text}");
    let e = b
        .generate_keys(&k.ctx, &k.sk, 1 << 20, &mut k.rng)
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "bootstrapping (512 slots, level budget 2/2) needs {} MiB of evaluation keys but \
             only 1 MiB are available; use fewer slots, a larger level budget or a machine \
             with more memory",
            m.total_bytes >> 20
        )
    );
    // Too few levels, bad slot counts: clear errors.
    let small = keys(insecure_params(10, 0, 3), 24);
    let e = Bootstrapper::new(&small.ctx, BootstrapConfig::full(1024).unwrap()).unwrap_err();
    assert!(matches!(e, CkksError::NotEnoughLevels { .. }), "{e}");
    let mut cfg = BootstrapConfig::full(1024).unwrap();
    cfg.slots = 48;
    assert!(Bootstrapper::new(&k.ctx, cfg).is_err());
}

#[test]
fn bootstrap_params_fit_the_128_bit_table() {
    // N = 2^16 with the full-slot configuration: depth 3 + 13 + 3 = 19 of 60-bit primes,
    // q_0 of 60 bits and four 61-bit special primes leave ⌊(1772 − 1 − 60 − 1140 − 244)/50⌋
    // = 6 user levels of 50 bits.
    let config = BootstrapConfig::full(1 << 16).unwrap();
    assert_eq!((config.cts_levels, config.stc_levels), (3, 3));
    assert_eq!(
        (
            config.eval_mod.k,
            config.eval_mod.degree,
            config.eval_mod.double_angles
        ),
        (482.0, 95, 6)
    );
    let depth = config.cts_levels + config.eval_mod.depth() + config.stc_levels;
    assert_eq!(depth, 19);
    let p = bootstrap_params(16, depth, 50, None, 4, false).unwrap();
    assert_eq!(p.security(), SecurityLevel::Bits128);
    assert!(p.log_qp() <= 1772.0);
    assert_eq!(p.max_level(), 6 + depth);
    // N = 2^15 (881 bits) cannot hold it.
    let c15 = BootstrapConfig::full(1 << 15).unwrap();
    let d15 = c15.cts_levels + c15.eval_mod.depth() + c15.stc_levels;
    let e = bootstrap_params(15, d15, 50, None, 4, false).unwrap_err();
    assert!(matches!(e, CkksError::NotEnoughLevels { .. }), "{e}");
}

/// The diagonals encoded once at construction give the ciphertexts of the path that encodes
/// them on every call, bit for bit: full slots (with an output gain, which re-encodes the first
/// SlotToCoeff stage) and 32 sparse slots; the memory model counts exactly the encoded bytes.
#[test]
fn bootstrap_cached_diagonals_equal_uncached_insecure() {
    let n = 1024;
    let em = EvalModConfig::for_ring(n).unwrap();
    for (slots, cts, stc, gain, seed) in [(512, 2, 2, Some(16.0), 31), (32, 2, 1, None, 32)] {
        let mut k = keys(
            insecure_params_scale(10, 2, cts + em.depth() + stc, 50),
            seed,
        );
        let config = BootstrapConfig {
            slots,
            cts_levels: cts,
            stc_levels: stc,
            eval_mod: em,
            sparse_secret: None,
        };
        let mut b = Bootstrapper::new(&k.ctx, config).unwrap();
        if let Some(g) = gain {
            b = b.with_output_gain(&k.ctx, g).unwrap();
        }
        // Memory model: one plaintext of ℓ + 1 limbs per diagonal, ℓ the stage's level.
        let top = k.ctx.params().max_level();
        let stc_top = b.output_level() + stc;
        let mut want = 0u64;
        for (i, lt) in b.coeff_to_slot().iter().enumerate() {
            want += EncodedTransform::model_bytes(lt.diagonal_indices().len(), top - i, n);
        }
        for (i, lt) in b.slot_to_coeff().iter().enumerate() {
            want += EncodedTransform::model_bytes(lt.diagonal_indices().len(), stc_top - i, n);
        }
        assert_eq!(b.key_memory(&k.ctx).matrix_bytes, want);
        let gk = b
            .generate_keys(&k.ctx, &k.sk, u64::MAX, &mut k.rng)
            .unwrap();
        let rk = RelinKey::generate(&k.ctx, &k.sk, &mut k.rng);
        let ev = Evaluator::new(Arc::clone(&k.ctx), Some(rk), gk).unwrap();
        let mut rng = ChaCha20Rng::seed_from_u64(seed + 100);
        let v: Vec<f64> = (0..slots).map(|_| rng.random_range(-1.0..1.0)).collect();
        let full: Vec<f64> = (0..n / 2).map(|j| v[j % slots] / 16.0).collect();
        let pt = k.ctx.encode(&full, 0, k.ctx.params().scale(0)).unwrap();
        let ct0 = k.ctx.encrypt(&k.pk, &pt, &mut k.rng).unwrap();
        let cached = b.bootstrap(&ev, &ct0).unwrap();
        let uncached = b.bootstrap_uncached(&ev, &ct0).unwrap();
        assert_eq!(cached.level(), uncached.level());
        assert_eq!(cached.scale().to_bits(), uncached.scale().to_bits());
        assert!(cached.c == uncached.c, "{slots} slots: ciphertexts differ");
        // And it still bootstraps (the gain undoes the 1/16 of the input).
        let got = k.ctx.decrypt_decode(&k.sk, &cached).unwrap();
        let g = gain.unwrap_or(1.0) / 16.0;
        let err = got
            .iter()
            .enumerate()
            .map(|(j, x)| (x - g * v[j % slots]).abs())
            .fold(0.0, f64::max);
        assert!(err < 1e-4, "{slots} slots: error {err:e}");
    }
}

/// An encoded transform applies only at the level and scale it was encoded for (a clear error
/// otherwise), and equals the transform encoded on the fly there.
#[test]
fn encoded_transform_checks_level_and_scale_insecure() {
    let mut k = keys(insecure_params(10, 3, 0), 33);
    let mut rng = ChaCha20Rng::seed_from_u64(6);
    let mut diags = std::collections::BTreeMap::new();
    for d in [0usize, 1, 5, 9, 300] {
        diags.insert(d, random_complex(&mut rng, 512));
    }
    let lt = LinearTransform::new(512, diags).unwrap();
    let ev = k.evaluator(&lt.rotation_steps(), false);
    let ct = k.enc_complex(&random_complex(&mut rng, 512));
    let top = k.ctx.params().max_level();
    let enc = k.ctx.encode_transform(&lt, top, ct.scale()).unwrap();
    assert_eq!(enc.diagonals(), 5);
    let a = ev.linear_transform_encoded(&ct, &enc).unwrap();
    let b = ev.linear_transform(&ct, &lt).unwrap();
    assert!(a.c == b.c && a.level() == b.level());
    let low = ev.mod_drop(&ct, top - 1).unwrap();
    let e = ev.linear_transform_encoded(&low, &enc).unwrap_err();
    assert!(matches!(e, CkksError::Level { .. }), "{e}");
    let other = k.ctx.encode_transform(&lt, top, ct.scale() * 2.0).unwrap();
    let e = ev.linear_transform_encoded(&ct, &other).unwrap_err();
    assert!(matches!(e, CkksError::Scale { .. }), "{e}");
    assert!(k.ctx.encode_transform(&lt, 0, 1.0).is_err());
}

/// The Fermat inverse used by basis conversion, rescaling and ModDown equals fhe-math's
/// (primality-testing) inverse, and a·a^{−1} ≡ 1, on every prime of a chain.
#[test]
fn fermat_inverse_equals_fhe_math_inverse() {
    let k = keys(insecure_params(10, 3, 2), 34);
    let ring = k.ctx.ring();
    let mut rng = ChaCha20Rng::seed_from_u64(9);
    for m in &ring.moduli {
        assert_eq!(super::ring::inv_mod(m, 0), 0);
        for _ in 0..50 {
            let a = rng.random_range(1..m.val());
            let i = super::ring::inv_mod(m, a);
            assert_eq!(Some(i), m.inv(a));
            assert_eq!(m.mul(a, i), 1);
        }
        // Unreduced input (a prime of the chain) as in the callers.
        let big = u64::MAX - 5;
        assert_eq!(m.mul(m.reduce(big), super::ring::inv_mod(m, big)), 1);
    }
}

use super::tests::max_err as max_diff;

/// Lazy rescaling of the constant sums ([`eval_plan_lazy`]) gives the eager replay's levels
/// and, within the CKKS noise, its values: the EvalMod plans of the dense (N = 2^10) and the
/// sparse (h = 32) secret, and a hand-made plan whose lazy group mixes inputs of two levels,
/// a `Sub` and constants (c_1·x − c_2·x² + c_0 − c_3); all against the plan evaluated in f64.
#[test]
fn lazy_rescale_equals_eager_insecure() {
    use crate::poly::{EvalPlan, Op};
    let mixed = EvalPlan {
        ops: vec![
            Op::Input,
            Op::Mul(0, 0),
            Op::MulConst(0, 0),
            Op::MulConst(1, 1),
            Op::Sub(2, 3),
            Op::AddConst(4, 2),
            Op::AddConst(5, 3),
        ],
        coeffs: [0.75, -0.4, 0.3, 0.125]
            .iter()
            .map(|&c| rug::Float::with_val(64, c))
            .collect(),
        output: 6,
    };
    // One group: ops 2–6 (two products, the difference, two constants) rooted at the output.
    let g = super::polyeval::lazy_groups(&mixed);
    assert_eq!(g, [None, None, Some(6), Some(6), Some(6), Some(6), Some(6)]);
    // The sparse EvalMod plan: 42 constant products, one rescale per leaf sum instead.
    let em = EvalModConfig::for_sparse_secret(32).unwrap().plan();
    let roots = super::polyeval::lazy_groups(&em)
        .iter()
        .enumerate()
        .filter(|(i, r)| **r == Some(*i))
        .count();
    eprintln!(
        "sparse EvalMod: {} constant products, {roots} rescaled sums",
        em.scalar_mults()
    );
    assert!(roots > 0 && 4 * roots <= em.scalar_mults() as usize);
    let plans = [
        (
            "dense EvalMod",
            EvalModConfig::for_ring(1024).unwrap().plan(),
        ),
        (
            "sparse EvalMod",
            EvalModConfig::for_sparse_secret(32).unwrap().plan(),
        ),
        ("mixed", mixed),
    ];
    let mut k = keys(insecure_params_scale(10, 0, 16, 50), 61);
    let ev = k.evaluator(&[], false);
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    let u: Vec<f64> = (0..512).map(|_| rng.random_range(-1.0..1.0)).collect();
    let top = k.ctx.params().max_level();
    let pt = k.ctx.encode(&u, top, k.ctx.params().scale(top)).unwrap();
    let ct = k.ctx.encrypt(&k.pk, &pt, &mut k.rng).unwrap();
    for (name, plan) in &plans {
        let want: Vec<f64> = u.iter().map(|x| plan.eval(x)).collect();
        let (e, te) = eval_plan(&ev, plan, &ct).unwrap();
        let (l, tl) = eval_plan_lazy(&ev, plan, &ct).unwrap();
        assert_eq!(te, tl, "{name}: same levels and multiplications");
        // Decoded at level 0 (Δ_0 = 2^50 below q_0; the upper scales approach 2^60).
        let de = k
            .ctx
            .decrypt_decode(&k.sk, &ev.adjust_to(&e, 0).unwrap())
            .unwrap();
        let dl = k
            .ctx
            .decrypt_decode(&k.sk, &ev.adjust_to(&l, 0).unwrap())
            .unwrap();
        let (err_e, err_l) = (max_diff(&de, &want), max_diff(&dl, &want));
        eprintln!(
            "{name}: eager error {err_e:.2e}, lazy error {err_l:.2e}, |lazy − eager| {:.2e}",
            max_diff(&de, &dl)
        );
        assert!(err_e < 1e-7 && err_l < 1e-7, "{name}: {err_e:e} {err_l:e}");
        assert!(max_diff(&de, &dl) < 1e-7);
    }
}

/// INSECURE N = 2^10 keys (seed `seed`, Δ_0 = 2^50, one user level), the bootstrapper of
/// `config` and an evaluator with its keys.
fn bootstrap_setup(config: BootstrapConfig, seed: u64) -> (Keys, Bootstrapper, Evaluator) {
    let mut k = keys(insecure_params_scale(10, 1, config.depth(), 50), seed);
    let b = Bootstrapper::new(&k.ctx, config).unwrap();
    let gk = b
        .generate_keys(&k.ctx, &k.sk, u64::MAX, &mut k.rng)
        .unwrap();
    let rk = RelinKey::generate(&k.ctx, &k.sk, &mut k.rng);
    let ev = Evaluator::new(Arc::clone(&k.ctx), Some(rk), gk).unwrap();
    (k, b, ev)
}

/// A bootstrap with lazy EvalMod and one with the eager replay: same level, both at the
/// stated precision, equal within the noise (dense and encapsulated, full slots).
#[test]
fn bootstrap_lazy_evalmod_equals_eager_insecure() {
    for sparse in [None, Some(32)] {
        let config = match sparse {
            None => BootstrapConfig::full(1024).unwrap(),
            Some(_) => BootstrapConfig::encapsulated(1024).unwrap(),
        };
        let (mut k, b, ev) = bootstrap_setup(config, 62);
        let mut rng = ChaCha20Rng::seed_from_u64(8);
        let v: Vec<f64> = (0..512).map(|_| rng.random_range(-1.0..1.0)).collect();
        let pt = k.ctx.encode(&v, 0, k.ctx.params().scale(0)).unwrap();
        let ct0 = k.ctx.encrypt(&k.pk, &pt, &mut k.rng).unwrap();
        let lazy = b.bootstrap(&ev, &ct0).unwrap();
        let eager = b.bootstrap_eager(&ev, &ct0).unwrap();
        assert_eq!(lazy.level(), eager.level());
        assert_eq!(lazy.level(), b.output_level());
        let dl = k.ctx.decrypt_decode(&k.sk, &lazy).unwrap();
        let de = k.ctx.decrypt_decode(&k.sk, &eager).unwrap();
        let (bl, be) = (-max_diff(&dl, &v).log2(), -max_diff(&de, &v).log2());
        eprintln!("secret {sparse:?}: lazy {bl:.1} bits, eager {be:.1} bits");
        assert!(bl >= 22.0 && be >= 22.0, "{bl} {be}");
        assert!(max_diff(&dl, &de) < 2f64.powi(-21));
    }
}

/// The giant steps of a linear transform summed over Q·P before one shared ModDown (the
/// second hoisting, `lintrans` module docs) against one ModDown per giant-step rotation.
/// Before the rescale the two differ by rounding only: at most (giants)·(k + 1)/2 per
/// coefficient (k special primes), against q_ℓ ≈ 2^60. The rescale rounds x/q_ℓ, which such a
/// shift changes only when it carries x across a rounding boundary (probability ≈
/// 2N·giants·(k + 1)/q_ℓ ≈ 2^−45 per transform here), so the outputs are bit-identical. A
/// wrong sum (a rotation missing, doubled, or left unreduced) changes the message itself.
#[test]
fn shared_giant_mod_down_equals_one_per_rotation_insecure() {
    let mut k = keys(insecure_params(10, 3, 0), 41);
    let mut rng = ChaCha20Rng::seed_from_u64(42);
    let p = 64;
    let rows: Vec<Vec<Complex>> = (0..p).map(|_| random_complex(&mut rng, p)).collect();
    let dense = LinearTransform::from_dense(&rows).unwrap();
    let mut diags = std::collections::BTreeMap::new();
    for d in [0usize, 1, 3, 16, 17, 40, 200, 257, 511, 507, 256] {
        diags.insert(d, random_complex(&mut rng, 512));
    }
    let sparse = LinearTransform::new(512, diags).unwrap();
    let mut steps: Vec<i64> = dense.rotation_steps();
    steps.extend(sparse.rotation_steps());
    let shared = k.evaluator(&steps, false);
    let per_rotation = shared.clone().with_giant_mod_downs();
    for (lt, period) in [(&dense, p), (&sparse, 512)] {
        let (_, giants) = lt.split(lt.baby_step());
        assert!(
            giants.len() >= 2,
            "period {period}: {} giant steps",
            giants.len()
        );
        let x = random_complex(&mut rng, period);
        let ct = k.enc_complex(&x);
        let a = shared.linear_transform(&ct, lt).unwrap();
        let b = per_rotation.linear_transform(&ct, lt).unwrap();
        assert_eq!(a.level(), b.level());
        assert_eq!(a.scale().to_bits(), b.scale().to_bits());
        assert!(a.c == b.c, "period {period}: ciphertexts differ");
        let e = max_err_periodic(&k.dec_complex(&a), &lt.apply(&x));
        assert!(e < 1e-5, "period {period}: error {e:e}");
    }
}

/// A bootstrap whose CoeffToSlot/SlotToCoeff share one ModDown per transform and one with a
/// ModDown per giant-step rotation: bit-identical (as in
/// `shared_giant_mod_down_equals_one_per_rotation_insecure`), at the stated precision
/// (encapsulated, full slots).
#[test]
fn bootstrap_shared_giant_mod_down_equals_per_rotation_insecure() {
    let (mut k, b, ev) = bootstrap_setup(BootstrapConfig::encapsulated(1024).unwrap(), 63);
    let reference = ev.clone().with_giant_mod_downs();
    let mut rng = ChaCha20Rng::seed_from_u64(9);
    let v: Vec<f64> = (0..512).map(|_| rng.random_range(-1.0..1.0)).collect();
    let pt = k.ctx.encode(&v, 0, k.ctx.params().scale(0)).unwrap();
    let ct0 = k.ctx.encrypt(&k.pk, &pt, &mut k.rng).unwrap();
    let shared = b.bootstrap(&ev, &ct0).unwrap();
    let per_rotation = b.bootstrap(&reference, &ct0).unwrap();
    assert_eq!(shared.level(), b.output_level());
    assert_eq!(shared.level(), per_rotation.level());
    assert!(
        shared.c == per_rotation.c,
        "bootstrapped ciphertexts differ"
    );
    let bits = -max_diff(&k.ctx.decrypt_decode(&k.sk, &shared).unwrap(), &v).log2();
    eprintln!("shared ModDown: {bits:.1} bits");
    assert!(bits >= 22.0, "{bits}");
}
