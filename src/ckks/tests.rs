//! Unit tests of the CKKS primitives against plaintext arithmetic (toy, insecure parameters).

use std::sync::Arc;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;

use super::*;
use crate::poly::EvalPlan;

struct Fixture {
    ctx: Arc<CkksContext>,
    sk: SecretKey,
    pk: PublicKey,
    ev: Evaluator,
    rng: ChaCha20Rng,
}

fn params(log_n: u32, levels: usize) -> CkksParams {
    let mut q = vec![55u32];
    q.extend(std::iter::repeat_n(36, levels));
    CkksParamsBuilder::new()
        .log_n(log_n)
        .q_bits(&q)
        .p_bits(&[58, 58])
        .scale_bits(36)
        .insecure(true)
        .build()
        .unwrap()
}

fn fixture(log_n: u32, levels: usize, steps: &[i64]) -> Fixture {
    let ctx = CkksContext::new(params(log_n, levels)).unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    let sk = SecretKey::generate(&ctx, &mut rng);
    let pk = PublicKey::generate(&ctx, &sk, &mut rng);
    let rk = RelinKey::generate(&ctx, &sk, &mut rng);
    let gk = GaloisKeys::generate(&ctx, &sk, steps, &mut rng);
    let ev = Evaluator::new(Arc::clone(&ctx), Some(rk), gk).unwrap();
    Fixture {
        ctx,
        sk,
        pk,
        ev,
        rng,
    }
}

fn random_vec(rng: &mut ChaCha20Rng, n: usize, r: f64) -> Vec<f64> {
    (0..n).map(|_| rng.random_range(-r..r)).collect()
}

impl Fixture {
    fn enc(&mut self, v: &[f64]) -> Ciphertext {
        let top = self.ctx.params().max_level();
        let pt = self
            .ctx
            .encode(v, top, self.ctx.params().scale(top))
            .unwrap();
        self.ctx.encrypt(&self.pk, &pt, &mut self.rng).unwrap()
    }
    fn dec(&self, ct: &Ciphertext) -> Vec<f64> {
        self.ctx.decrypt_decode(&self.sk, ct).unwrap()
    }
}

pub(super) fn max_err(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

#[test]
fn encode_decode_round_trip() {
    let f = fixture(10, 2, &[]);
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let v = random_vec(&mut rng, f.ctx.params().slots(), 10.0);
    for level in 0..=2 {
        let pt = f
            .ctx
            .encode(&v, level, f.ctx.params().scale(level))
            .unwrap();
        let back = f.ctx.decode(&pt).unwrap();
        assert!(max_err(&v, &back) < 1e-8, "level {level}");
    }
}

#[test]
fn encrypt_decrypt_public_and_secret_key() {
    let mut f = fixture(11, 2, &[]);
    let v = random_vec(&mut f.rng.clone(), f.ctx.params().slots(), 5.0);
    let ct = f.enc(&v);
    assert!(max_err(&v, &f.dec(&ct)) < 1e-6);
    let pt = f.ctx.encode(&v, 2, f.ctx.params().scale(2)).unwrap();
    let ct2 = f.ctx.encrypt_sk(&f.sk, &pt, &mut f.rng).unwrap();
    assert!(max_err(&v, &f.dec(&ct2)) < 1e-6);
}

#[test]
fn wrong_key_does_not_decrypt() {
    let mut f = fixture(11, 2, &[]);
    let v = random_vec(&mut f.rng.clone(), f.ctx.params().slots(), 5.0);
    let ct = f.enc(&v);
    let mut rng = ChaCha20Rng::seed_from_u64(99);
    let other = SecretKey::generate(&f.ctx, &mut rng);
    // Decoding garbage may overflow q_0 (an error) or give values far from the message.
    match f.ctx.decrypt_decode(&other, &ct) {
        Err(CkksError::Overflow { .. }) => {}
        Err(e) => panic!("unexpected error {e}"),
        Ok(w) => assert!(max_err(&v, &w) > 1e3, "wrong key recovered the message"),
    }
}

#[test]
fn add_sub_constants_match_plaintext() {
    let mut f = fixture(11, 3, &[]);
    let n = f.ctx.params().slots();
    let a = random_vec(&mut f.rng, n, 3.0);
    let b = random_vec(&mut f.rng, n, 3.0);
    let (ca, cb) = (f.enc(&a), f.enc(&b));
    let s = f.ev.add(&ca, &cb).unwrap();
    let want: Vec<f64> = a.iter().zip(&b).map(|(x, y)| x + y).collect();
    assert!(max_err(&want, &f.dec(&s)) < 1e-6);
    let d = f.ev.sub(&ca, &cb).unwrap();
    let want: Vec<f64> = a.iter().zip(&b).map(|(x, y)| x - y).collect();
    assert!(max_err(&want, &f.dec(&d)) < 1e-6);
    let c = f.ev.add_const(&ca, -1.25).unwrap();
    let want: Vec<f64> = a.iter().map(|x| x - 1.25).collect();
    assert!(max_err(&want, &f.dec(&c)) < 1e-6);
    let m = f.ev.mul_int(&ca, -3).unwrap();
    let want: Vec<f64> = a.iter().map(|x| -3.0 * x).collect();
    assert!(max_err(&want, &f.dec(&m)) < 1e-5);
    let k = f.ev.mul_const(&ca, 0.3137).unwrap();
    assert_eq!(k.level(), 2);
    assert_eq!(k.scale(), f.ctx.params().scale(2));
    let want: Vec<f64> = a.iter().map(|x| 0.3137 * x).collect();
    assert!(max_err(&want, &f.dec(&k)) < 1e-5);
    let pv = random_vec(&mut f.rng, n, 2.0);
    let pm = f.ev.mul_vec(&ca, &pv).unwrap();
    let want: Vec<f64> = a.iter().zip(&pv).map(|(x, y)| x * y).collect();
    assert!(max_err(&want, &f.dec(&pm)) < 1e-5);
    let pt = f.ctx.encode(&b, 3, ca.scale()).unwrap();
    let ap = f.ev.add_plain(&ca, &pt).unwrap();
    let want: Vec<f64> = a.iter().zip(&b).map(|(x, y)| x + y).collect();
    assert!(max_err(&want, &f.dec(&ap)) < 1e-6);
}

#[test]
fn mul_relin_rescale_chain_matches_plaintext() {
    let mut f = fixture(12, 4, &[]);
    let n = f.ctx.params().slots();
    let a = random_vec(&mut f.rng, n, 1.0);
    let b = random_vec(&mut f.rng, n, 1.0);
    let (ca, cb) = (f.enc(&a), f.enc(&b));
    let mut ct = f.ev.mul(&ca, &cb).unwrap();
    let mut want: Vec<f64> = a.iter().zip(&b).map(|(x, y)| x * y).collect();
    assert_eq!(ct.level(), 3);
    assert_eq!(ct.scale(), f.ctx.params().scale(3));
    assert!(max_err(&want, &f.dec(&ct)) < 1e-5);
    // Square down to level 0: scales stay exactly on the chain.
    for l in (0..3).rev() {
        ct = f.ev.mul(&ct, &ct).unwrap();
        want.iter_mut().for_each(|x| *x *= *x);
        assert_eq!(ct.level(), l);
        assert_eq!(ct.scale(), f.ctx.params().scale(l));
        assert!(max_err(&want, &f.dec(&ct)) < 1e-4, "level {l}");
    }
    // Operands at different levels: adjust_to lands on the lower level's scale.
    let lo = f.ev.mul(&ca, &ca).unwrap();
    let hi = f.ev.adjust_to(&cb, lo.level()).unwrap();
    assert_eq!(hi.scale(), lo.scale());
    let s = f.ev.add(&lo, &hi).unwrap();
    let want: Vec<f64> = a.iter().zip(&b).map(|(x, y)| x * x + y).collect();
    assert!(max_err(&want, &f.dec(&s)) < 1e-5);
}

#[test]
fn rotations_by_every_power_of_two() {
    let log_n = 10;
    let slots = 1usize << (log_n - 1);
    let mut steps: Vec<i64> = (0..log_n - 1).map(|k| 1i64 << k).collect();
    steps.extend(steps.clone().iter().map(|s| -s));
    let mut f = fixture(log_n, 2, &steps);
    let v = random_vec(&mut f.rng, slots, 4.0);
    let ct = f.enc(&v);
    for &r in &steps {
        let rc = f.ev.rotate(&ct, r).unwrap();
        let got = f.dec(&rc);
        let want: Vec<f64> = (0..slots)
            .map(|j| v[(j as i64 + r).rem_euclid(slots as i64) as usize])
            .collect();
        assert!(max_err(&want, &got) < 1e-5, "step {r}");
    }
    // Rotation after a multiplication (lower level) too.
    let sq = f.ev.mul(&ct, &ct).unwrap();
    let rc = f.ev.rotate(&sq, 4).unwrap();
    let got = f.dec(&rc);
    for j in 0..slots {
        let w = v[(j + 4) % slots];
        assert!((got[j] - w * w).abs() < 1e-4);
    }
}

#[test]
fn bad_inputs_are_clear_errors() {
    let mut f = fixture(10, 3, &[1]);
    let n = f.ctx.params().slots();
    let a = random_vec(&mut f.rng, n, 1.0);
    let ca = f.enc(&a);
    let low = f.ev.mul(&ca, &ca).unwrap();
    // Level mismatch.
    let e = f.ev.add(&ca, &low).unwrap_err();
    assert!(matches!(e, CkksError::Level { .. }), "{e}");
    // Scale mismatch: a lazy product has scale Δ·S.
    let lazy = f.ev.mul_const_lazy(&ca, 2.0).unwrap();
    let e = f.ev.add(&ca, &lazy).unwrap_err();
    assert!(matches!(e, CkksError::Scale { .. }), "{e}");
    // Missing Galois key.
    let e = f.ev.rotate(&ca, 3).unwrap_err();
    assert!(
        matches!(e, CkksError::MissingGaloisKey { step: 3, .. }),
        "{e}"
    );
    assert!(e.to_string().contains("rotation by 3"));
    // Rescale at level 0.
    let z = f.ev.mod_drop(&ca, 0).unwrap();
    assert!(matches!(f.ev.rescale(&z), Err(CkksError::Level { .. })));
    // Ciphertext of other parameters.
    let g = fixture(10, 2, &[]);
    let e = g.ev.add(&ca, &ca).unwrap_err();
    assert!(matches!(e, CkksError::ParamsMismatch { .. }), "{e}");
    // Keys of different secrets.
    let mut rng = ChaCha20Rng::seed_from_u64(5);
    let sk2 = SecretKey::generate(&f.ctx, &mut rng);
    let rk2 = RelinKey::generate(&f.ctx, &sk2, &mut rng);
    let gk = GaloisKeys::generate(&f.ctx, &f.sk, &[1], &mut rng);
    let e = Evaluator::new(Arc::clone(&f.ctx), Some(rk2), gk).unwrap_err();
    assert!(matches!(e, CkksError::KeyMismatch { .. }), "{e}");
    // A plan deeper than the levels left: refused before any work.
    let s = crate::remez::table1_sign(8).unwrap();
    let plans: Vec<EvalPlan> = sign_plans(&s);
    let e = relu_scaled(&f.ev, &plans, &ca, 1.0).unwrap_err();
    assert!(
        matches!(
            e,
            CkksError::NotEnoughLevels {
                needed: 8,
                available: 3,
                ..
            }
        ),
        "{e}"
    );
    // Encoding too many values.
    assert!(matches!(
        f.ctx.encode(&vec![0.0; n + 1], 0, 1e6),
        Err(CkksError::Encode { .. })
    ));
}

#[test]
fn encrypted_relu_replays_plan_with_asserted_levels() {
    // α = 6: Table 1 degrees {3, 7}, sign depth 2 + 3 = 5, r_α depth 6.
    let alpha = 6;
    let s = crate::remez::table1_sign(alpha).unwrap();
    let plans: Vec<EvalPlan> = sign_plans(&s);
    let depth: u32 = plans.iter().map(EvalPlan::depth).sum();
    assert_eq!(depth + 1, s.table_depth());
    let mut f = fixture(11, 7, &[]);
    let n = f.ctx.params().slots();
    let u: Vec<f64> = (0..n)
        .map(|i| -1.0 + 2.0 * i as f64 / (n - 1) as f64)
        .collect();
    let cu = f.enc(&u);
    let (p, traces) = eval_sign(&f.ev, &plans, &cu).unwrap();
    assert_eq!(p.level(), 7 - depth as usize);
    for (t, pl) in traces.iter().zip(&plans) {
        assert_eq!(t.input_level - t.output_level, pl.depth() as usize);
        assert_eq!(t.nonscalar_mults, pl.nonscalar_mults());
    }
    let got = f.dec(&p);
    let want: Vec<f64> = u.iter().map(|&x| s.poly().eval_f64(x)).collect();
    assert!(max_err(&want, &got) < 1e-3, "{}", max_err(&want, &got));
    // r_α: u(1 + p(u)) = 2 r_α(u), compared with approx::relu_f64.
    let r = relu_scaled(&f.ev, &plans, &cu, 0.5).unwrap();
    assert_eq!(r.level(), 7 - s.table_depth() as usize);
    let got = f.dec(&r);
    let want: Vec<f64> = u
        .iter()
        .map(|&x| crate::approx::relu_f64(s.poly(), x))
        .collect();
    assert!(max_err(&want, &got) < 1e-3, "{}", max_err(&want, &got));
    // And it is close to ReLU itself (2^-α), as a sanity check of the whole chain.
    let relu: Vec<f64> = u.iter().map(|&x| x.max(0.0)).collect();
    assert!(max_err(&relu, &got) < 2f64.powi(-(alpha as i32)) + 1e-3);
}

#[test]
fn encrypted_relu_alpha13_table1() {
    // α = 13: degrees {15, 15, 27}, r_α depth 14 (Table 1), at scale 2^40. Stage 2's input
    // reaches 1 + τ_1 with τ_1 close to 1: the plans use the Chebyshev basis of
    // [−(1 + τ), 1 + τ] (`sign_plans`). At α = 14 the same chain measured an error of ≈ 0.1:
    // the later stages amplify the CKKS noise of a 2^40 scale beyond use (see the report).
    let s = crate::remez::table1_sign(13).unwrap();
    let plans = sign_plans(&s);
    let depth: u32 = plans.iter().map(EvalPlan::depth).sum();
    assert_eq!(depth + 1, s.table_depth());
    let l = s.table_depth() as usize;
    let mut q = vec![60u32];
    q.extend(std::iter::repeat_n(40, l));
    let p = CkksParamsBuilder::new()
        .log_n(12)
        .q_bits(&q)
        .p_bits(&[60, 60, 60])
        .scale_bits(40)
        .insecure(true)
        .build()
        .unwrap();
    let ctx = CkksContext::new(p).unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    let sk = SecretKey::generate(&ctx, &mut rng);
    let pk = PublicKey::generate(&ctx, &sk, &mut rng);
    let rk = RelinKey::generate(&ctx, &sk, &mut rng);
    let ev = Evaluator::new(Arc::clone(&ctx), Some(rk), GaloisKeys::default()).unwrap();
    let n = ctx.params().slots();
    let u: Vec<f64> = (0..n)
        .map(|i| -1.0 + 2.0 * i as f64 / (n - 1) as f64)
        .collect();
    let top = ctx.params().max_level();
    let pt = ctx.encode(&u, top, ctx.params().scale(top)).unwrap();
    let ct = ctx.encrypt(&pk, &pt, &mut rng).unwrap();
    let r = relu_scaled(&ev, &plans, &ct, 0.5).unwrap();
    assert_eq!(r.level(), 0);
    let got = ctx.decrypt_decode(&sk, &r).unwrap();
    let want: Vec<f64> = u
        .iter()
        .map(|&x| crate::approx::relu_f64(s.poly(), x))
        .collect();
    assert!(max_err(&want, &got) < 1e-3, "{}", max_err(&want, &got));
}

#[test]
fn encrypted_max2_matches_plaintext() {
    let s = crate::remez::table1_sign(6).unwrap();
    let plans: Vec<EvalPlan> = sign_plans(&s);
    let mut f = fixture(11, 7, &[]);
    let n = f.ctx.params().slots();
    let a: Vec<f64> = (0..n).map(|_| f.rng.random_range(0.0..1.0)).collect();
    let b: Vec<f64> = (0..n).map(|_| f.rng.random_range(0.0..1.0)).collect();
    let (ca, cb) = (f.enc(&a), f.enc(&b));
    let m = max2_scaled(&f.ev, &plans, &ca, &cb, 0.5).unwrap();
    let got = f.dec(&m);
    let want: Vec<f64> = a
        .iter()
        .zip(&b)
        .map(|(&x, &y)| crate::approx::max2_f64(s.poly(), x, y))
        .collect();
    assert!(max_err(&want, &got) < 1e-3, "{}", max_err(&want, &got));
}
