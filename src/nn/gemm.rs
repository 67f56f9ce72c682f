//! The one place in `nn` with `unsafe`: safe wrappers over `matrixmultiply`'s raw-pointer
//! sgemm/dgemm, and the register-block kernels (AVX2 + FMA for f32, a portable version
//! otherwise, the same bits): the direct-convolution tile, the 1×1-convolution block
//! [`pw_tile`], the depthwise block [`dw_block`], the exact Clip and the r̃_α evaluation.
//! Every call checks the slice lengths first.
#![allow(unsafe_code)]

/// C[m×n] = A[m×k] · B[k×n] (+ C when `accumulate`), all row-major and contiguous.
///
/// Returns `false` (and does nothing) when a slice is too short for the given sizes.
pub(crate) fn sgemm(
    m: usize,
    k: usize,
    n: usize,
    a: &[f32],
    b: &[f32],
    c: &mut [f32],
    accumulate: bool,
) -> bool {
    if a.len() < m * k || b.len() < k * n || c.len() < m * n {
        return false;
    }
    if m == 0 || n == 0 {
        return true;
    }
    let (Ok(ki), Ok(ni)) = (isize::try_from(k), isize::try_from(n)) else {
        return false;
    };
    let beta = if accumulate { 1.0 } else { 0.0 };
    // SAFETY: the lengths were checked above: A has m·k, B has k·n and C has m·n elements,
    // laid out row-major with the strides passed (row stride = number of columns, column
    // stride 1). C does not alias A or B (a `&mut` borrow next to two `&` borrows).
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            1.0,
            a.as_ptr(),
            ki,
            1,
            b.as_ptr(),
            ni,
            1,
            beta,
            c.as_mut_ptr(),
            ni,
            1,
        );
    }
    true
}

/// f64 version of [`sgemm`].
pub(crate) fn dgemm(
    m: usize,
    k: usize,
    n: usize,
    a: &[f64],
    b: &[f64],
    c: &mut [f64],
    accumulate: bool,
) -> bool {
    if a.len() < m * k || b.len() < k * n || c.len() < m * n {
        return false;
    }
    if m == 0 || n == 0 {
        return true;
    }
    let (Ok(ki), Ok(ni)) = (isize::try_from(k), isize::try_from(n)) else {
        return false;
    };
    let beta = if accumulate { 1.0 } else { 0.0 };
    // SAFETY: as in `sgemm`: lengths checked, row-major strides, no aliasing.
    unsafe {
        matrixmultiply::dgemm(
            m,
            k,
            n,
            1.0,
            a.as_ptr(),
            ki,
            1,
            b.as_ptr(),
            ni,
            1,
            beta,
            c.as_mut_ptr(),
            ni,
            1,
        );
    }
    true
}

/// Output channels per direct-convolution tile (two 8-lane vectors of f32).
pub const CO_TILE: usize = 16;
/// Output pixels per direct-convolution tile.
pub const PX_TILE: usize = 6;

/// The input offsets of one convolution's taps, `off[k]` for k = (ci·kh + i)·kw + j, with
/// their maximum (so that a tile checks its bounds once, not once per tap).
#[derive(Debug, Clone, Default)]
pub struct Taps {
    off: Vec<usize>,
    max: usize,
}

impl Taps {
    /// From the tap offsets.
    pub(crate) fn new(off: Vec<usize>) -> Self {
        let max = off.iter().copied().max().unwrap_or(0);
        Self { off, max }
    }

    /// Number of taps (the reduction length k of the GEMM view).
    pub(crate) fn len(&self) -> usize {
        self.off.len()
    }

    /// The input offset of tap `k` (0 past the last).
    #[cfg(test)]
    pub(crate) fn off_at(&self, k: usize) -> usize {
        self.off.get(k).copied().unwrap_or(0)
    }
}

/// One tile of a direct convolution (the GEMM view without im2col):
/// `acc[p][c] = Σ_k w[k·16 + c] · x[pix[p] + off[k]]`, for the `PX_TILE` output pixels whose
/// window origins in `x` are `pix` and the 16 output channels of the packed weight panel `w`
/// (`[k][16]`, zero rows past the last channel). Every sum is one fused multiply-add chain in
/// tap order starting from 0, so a value depends neither on the tile nor on the lanes next to
/// it (the same bits on every code path and thread count).
///
/// Returns `false` (and leaves `acc` alone) when `w` or `x` is too short.
pub(crate) fn conv_tile<T: super::Real>(
    x: &[T],
    pix: &[usize; PX_TILE],
    taps: &Taps,
    w: &[T],
    acc: &mut [[T; CO_TILE]; PX_TILE],
) -> bool {
    let kk = taps.len();
    if w.len() < kk * CO_TILE || (kk > 0 && pix.iter().any(|&p| p + taps.max >= x.len())) {
        return false;
    }
    // Two pixels at a time: their 2 × 16 sums stay in registers across the taps (f64: 8
    // vectors, enough independent chains to cover the FMA latency without spilling).
    for (a3, p3) in acc.chunks_exact_mut(2).zip(pix.chunks_exact(2)) {
        let xs: [&[T]; 2] = [0, 1].map(|i| p3.get(i).and_then(|&p| x.get(p..)).unwrap_or(&[]));
        let mut s = [[T::ZERO; CO_TILE]; 2];
        for (&o, wk) in taps.off.iter().zip(w.chunks_exact(CO_TILE)) {
            let v = xs.map(|xp| xp.get(o).copied().unwrap_or(T::ZERO));
            if let Ok(wk) = <&[T; CO_TILE]>::try_from(wk) {
                for (s, v) in s.iter_mut().zip(v) {
                    for (s, &wc) in s.iter_mut().zip(wk) {
                        *s = wc.mul_add(v, *s);
                    }
                }
            }
        }
        for (a, s) in a3.iter_mut().zip(s) {
            *a = s;
        }
    }
    true
}

/// [`conv_tile`] for f32 with AVX2 + FMA: 12 accumulator registers (6 pixels × 2 vectors of
/// 8 channels), per tap two weight loads and six broadcasts. Same fused multiply-add chain as
/// the portable version, hence the same bits.
#[cfg(all(
    target_arch = "x86_64",
    target_feature = "avx2",
    target_feature = "fma"
))]
pub(crate) fn conv_tile_f32(
    x: &[f32],
    pix: &[usize; PX_TILE],
    taps: &Taps,
    w: &[f32],
    acc: &mut [[f32; CO_TILE]; PX_TILE],
) -> bool {
    use std::arch::x86_64::{
        _mm256_broadcast_ss, _mm256_fmadd_ps, _mm256_loadu_ps, _mm256_setzero_ps, _mm256_storeu_ps,
    };
    let kk = taps.len();
    if w.len() < kk * CO_TILE || (kk > 0 && pix.iter().any(|&p| p + taps.max >= x.len())) {
        return false;
    }
    let [p0, p1, p2, p3, p4, p5] = *pix;
    let (xp, wp) = (x.as_ptr(), w.as_ptr());
    // SAFETY: for every tap k, `k·16 + 15 < kk·16 ≤ w.len()` (checked above), and for every
    // pixel p, `p + off[k] ≤ p + max < x.len()` (checked above; `max` is the maximum of
    // `off` by construction of `Taps`). All loads are unaligned loads (`loadu`, `broadcast`)
    // of in-bounds f32 values; the stores write 8 lanes at offsets 0 and 8 of a `[f32; 16]`.
    // AVX2 and FMA are enabled at compile time (cfg above).
    unsafe {
        let mut c00 = _mm256_setzero_ps();
        let mut c01 = _mm256_setzero_ps();
        let mut c10 = _mm256_setzero_ps();
        let mut c11 = _mm256_setzero_ps();
        let mut c20 = _mm256_setzero_ps();
        let mut c21 = _mm256_setzero_ps();
        let mut c30 = _mm256_setzero_ps();
        let mut c31 = _mm256_setzero_ps();
        let mut c40 = _mm256_setzero_ps();
        let mut c41 = _mm256_setzero_ps();
        let mut c50 = _mm256_setzero_ps();
        let mut c51 = _mm256_setzero_ps();
        let (b0, b1, b2) = (xp.add(p0), xp.add(p1), xp.add(p2));
        let (b3, b4, b5) = (xp.add(p3), xp.add(p4), xp.add(p5));
        let mut wk = wp;
        for &o in &taps.off {
            let a0 = _mm256_loadu_ps(wk);
            let a1 = _mm256_loadu_ps(wk.add(8));
            wk = wk.add(CO_TILE);
            let v = _mm256_broadcast_ss(&*b0.add(o));
            c00 = _mm256_fmadd_ps(a0, v, c00);
            c01 = _mm256_fmadd_ps(a1, v, c01);
            let v = _mm256_broadcast_ss(&*b1.add(o));
            c10 = _mm256_fmadd_ps(a0, v, c10);
            c11 = _mm256_fmadd_ps(a1, v, c11);
            let v = _mm256_broadcast_ss(&*b2.add(o));
            c20 = _mm256_fmadd_ps(a0, v, c20);
            c21 = _mm256_fmadd_ps(a1, v, c21);
            let v = _mm256_broadcast_ss(&*b3.add(o));
            c30 = _mm256_fmadd_ps(a0, v, c30);
            c31 = _mm256_fmadd_ps(a1, v, c31);
            let v = _mm256_broadcast_ss(&*b4.add(o));
            c40 = _mm256_fmadd_ps(a0, v, c40);
            c41 = _mm256_fmadd_ps(a1, v, c41);
            let v = _mm256_broadcast_ss(&*b5.add(o));
            c50 = _mm256_fmadd_ps(a0, v, c50);
            c51 = _mm256_fmadd_ps(a1, v, c51);
        }
        let [a0, a1, a2, a3, a4, a5] = acc;
        _mm256_storeu_ps(a0.as_mut_ptr(), c00);
        _mm256_storeu_ps(a0.as_mut_ptr().add(8), c01);
        _mm256_storeu_ps(a1.as_mut_ptr(), c10);
        _mm256_storeu_ps(a1.as_mut_ptr().add(8), c11);
        _mm256_storeu_ps(a2.as_mut_ptr(), c20);
        _mm256_storeu_ps(a2.as_mut_ptr().add(8), c21);
        _mm256_storeu_ps(a3.as_mut_ptr(), c30);
        _mm256_storeu_ps(a3.as_mut_ptr().add(8), c31);
        _mm256_storeu_ps(a4.as_mut_ptr(), c40);
        _mm256_storeu_ps(a4.as_mut_ptr().add(8), c41);
        _mm256_storeu_ps(a5.as_mut_ptr(), c50);
        _mm256_storeu_ps(a5.as_mut_ptr().add(8), c51);
    }
    true
}

/// Portable [`conv_tile`] for f32 where AVX2 + FMA are not enabled at compile time.
#[cfg(not(all(
    target_arch = "x86_64",
    target_feature = "avx2",
    target_feature = "fma"
)))]
pub(crate) fn conv_tile_f32(
    x: &[f32],
    pix: &[usize; PX_TILE],
    taps: &Taps,
    w: &[f32],
    acc: &mut [[f32; CO_TILE]; PX_TILE],
) -> bool {
    conv_tile(x, pix, taps, w, acc)
}

/// Write a finished tile to the channel planes: `out[base + c·hw + p] = acc[p][c]` for the
/// real pixels `p < np` and channels `c < nco` (the transpose from the kernel's pixel-major
/// tile to the CHW layout). Portable version.
///
/// Returns `false` (and writes nothing) when `out` is too short.
pub(crate) fn scatter_tile<T: Copy>(
    acc: &[[T; CO_TILE]; PX_TILE],
    out: &mut [T],
    base: usize,
    hw: usize,
    np: usize,
    nco: usize,
) -> bool {
    let (np, nco) = (np.min(PX_TILE), nco.min(CO_TILE));
    if nco > 0 && np > 0 && base + (nco - 1) * hw + np > out.len() {
        return false;
    }
    for c in 0..nco {
        if let Some(row) = out.get_mut(base + c * hw..base + c * hw + np) {
            for (o, a) in row.iter_mut().zip(acc) {
                if let Some(&v) = a.get(c) {
                    *o = v;
                }
            }
        }
    }
    true
}

/// [`scatter_tile`] for f32 with AVX2: a full tile (6 pixels × 16 channels) is transposed in
/// registers (two 6 × 8 blocks: unpack, shuffle, lane extract) and each channel's 6 values are
/// written with one 4-value and one 2-value store, so nothing outside the 6 values is touched.
/// Partial tiles take the portable loop. Same values written, so the same bits.
#[cfg(all(target_arch = "x86_64", target_feature = "avx2"))]
pub(crate) fn scatter_tile_f32(
    acc: &[[f32; CO_TILE]; PX_TILE],
    out: &mut [f32],
    base: usize,
    hw: usize,
    np: usize,
    nco: usize,
) -> bool {
    use std::arch::x86_64::{
        __m128, _mm256_castps256_ps128, _mm256_extractf128_ps, _mm256_loadu_ps, _mm256_shuffle_ps,
        _mm256_unpackhi_ps, _mm256_unpacklo_ps, _mm_castps_pd, _mm_storeh_pd, _mm_storel_pd,
        _mm_storeu_ps,
    };
    if np != PX_TILE || nco != CO_TILE || base + (CO_TILE - 1) * hw + PX_TILE > out.len() {
        return scatter_tile(acc, out, base, hw, np, nco);
    }
    let (o, a) = (out.as_mut_ptr(), acc.as_ptr().cast::<f32>());
    // SAFETY: row c (c < 16) is written at `base + c·hw .. base + c·hw + 6`, and
    // `base + 15·hw + 6 ≤ out.len()` was checked above; the 4-value store covers offsets 0..4
    // and the 2-value stores (`storel_pd` / `storeh_pd` of 64 bits) offsets 4..6. The loads
    // read 8 f32 at offsets 0 and 8 of each `[f32; 16]` row p < 6 of `acc` (contiguous,
    // 96 values). AVX2 is enabled at
    // compile time (cfg above).
    unsafe {
        for h in 0..2 {
            let r = |p: usize| _mm256_loadu_ps(a.add(CO_TILE * p + 8 * h));
            let (r0, r1, r2, r3, r4, r5) = (r(0), r(1), r(2), r(3), r(4), r(5));
            // t0 = [p0c0 p1c0 p0c1 p1c1 | c4 c5], t1 = [p0c2 p1c2 p0c3 p1c3 | c6 c7], …
            let t0 = _mm256_unpacklo_ps(r0, r1);
            let t1 = _mm256_unpackhi_ps(r0, r1);
            let t2 = _mm256_unpacklo_ps(r2, r3);
            let t3 = _mm256_unpackhi_ps(r2, r3);
            let t4 = _mm256_unpacklo_ps(r4, r5);
            let t5 = _mm256_unpackhi_ps(r4, r5);
            // u_c = [p0 p1 p2 p3 of channel c | of channel c + 4].
            let u0 = _mm256_shuffle_ps::<0x44>(t0, t2);
            let u1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
            let u2 = _mm256_shuffle_ps::<0x44>(t1, t3);
            let u3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
            let lo = |v| _mm256_castps256_ps128(v);
            let hi = |v| _mm256_extractf128_ps::<1>(v);
            // (first four pixels, the pair register, whether the pair is its upper half)
            let rows: [(__m128, __m128, bool); 8] = [
                (lo(u0), lo(t4), false),
                (lo(u1), lo(t4), true),
                (lo(u2), lo(t5), false),
                (lo(u3), lo(t5), true),
                (hi(u0), hi(t4), false),
                (hi(u1), hi(t4), true),
                (hi(u2), hi(t5), false),
                (hi(u3), hi(t5), true),
            ];
            for (c, (four, pair, upper)) in rows.into_iter().enumerate() {
                let d = o.add(base + (8 * h + c) * hw);
                _mm_storeu_ps(d, four);
                if upper {
                    _mm_storeh_pd(d.add(4).cast(), _mm_castps_pd(pair));
                } else {
                    _mm_storel_pd(d.add(4).cast(), _mm_castps_pd(pair));
                }
            }
        }
    }
    true
}

/// Portable [`scatter_tile_f32`] where AVX2 is not enabled at compile time.
#[cfg(not(all(target_arch = "x86_64", target_feature = "avx2")))]
pub(crate) fn scatter_tile_f32(
    acc: &[[f32; CO_TILE]; PX_TILE],
    out: &mut [f32],
    base: usize,
    hw: usize,
    np: usize,
    nco: usize,
) -> bool {
    scatter_tile(acc, out, base, hw, np, nco)
}

/// Output channels (rows of the weight matrix) per register block of the 1×1-convolution
/// kernel [`pw_tile`].
pub const PW_MR: usize = 6;
/// Output pixels (columns) per register block of [`pw_tile`] (two 8-lane vectors of f32).
pub const PW_NR: usize = 16;
/// Columns of the narrow register block for a row's last ≤ 8 pixels (one vector of f32;
/// EfficientNet's 7×7 planes end in one such block: 49 = 3·16 + 1).
pub const PW_NR_TAIL: usize = 8;

/// One register block of a 1×1 convolution as a matrix product Y = W·X on the CHW planes:
/// `acc[r][j] = Σ_k a[k·6 + r] · b[k·ldb + j]` for 6 rows r of the packed weight panel `a`
/// (`[k][6]`, see `ConvK::pack`) and N columns j (16 or 8) of `b` (k rows of the input planes, row
/// stride `ldb`, read in place: no packing of X). Every sum is one fused multiply-add chain in
/// k order starting from 0, so a value depends neither on the block nor on its neighbours.
///
/// Returns `false` (and leaves `acc` alone) when `a` or `b` is too short.
pub(crate) fn pw_tile<T: super::Real, const N: usize>(
    a: &[T],
    b: &[T],
    ldb: usize,
    k: usize,
    acc: &mut [[T; N]; PW_MR],
) -> bool {
    if a.len() < k * PW_MR || (k > 0 && b.len() < (k - 1) * ldb + N) {
        return false;
    }
    let mut s = [[T::ZERO; N]; PW_MR];
    for kk in 0..k {
        let (Some(av), Some(bv)) = (
            a.get(kk * PW_MR..(kk + 1) * PW_MR),
            b.get(kk * ldb..kk * ldb + N),
        ) else {
            return false;
        };
        for (s, &ar) in s.iter_mut().zip(av) {
            for (s, &bj) in s.iter_mut().zip(bv) {
                *s = ar.mul_add(bj, *s);
            }
        }
    }
    *acc = s;
    true
}

/// [`pw_tile`] for f32 with AVX2 + FMA, N = 16 (12 accumulator registers: 6 rows × 2
/// vectors of 8 pixels) or N = 8 (6 registers, for a row's last ≤ 8 pixels): per k one or
/// two loads of X and six broadcasts of W, the register arrays fully unrolled. Same fused
/// multiply-add chain as the portable version, hence the same bits (any other N runs the
/// portable version).
#[cfg(all(
    target_arch = "x86_64",
    target_feature = "avx2",
    target_feature = "fma"
))]
pub(crate) fn pw_tile_f32<const N: usize>(
    a: &[f32],
    b: &[f32],
    ldb: usize,
    k: usize,
    acc: &mut [[f32; N]; PW_MR],
) -> bool {
    use std::arch::x86_64::{
        _mm256_broadcast_ss, _mm256_fmadd_ps, _mm256_loadu_ps, _mm256_setzero_ps, _mm256_storeu_ps,
    };
    let nv = N / 8;
    if !N.is_multiple_of(8) || !(1..=2).contains(&nv) {
        return pw_tile(a, b, ldb, k, acc);
    }
    if a.len() < k * PW_MR || (k > 0 && b.len() < (k - 1) * ldb + N) {
        return false;
    }
    let (ap, bp) = (a.as_ptr(), b.as_ptr());
    // SAFETY: for every kk < k, the broadcasts read `a[kk·6 + r]`, r < 6, below
    // k·6 ≤ a.len(), and the loads read `b[kk·ldb + 8v .. + 8]` for v < nv = N/8, below
    // (k − 1)·ldb + N ≤ b.len() (both checked above; the second vector is loaded only when
    // N = 16). All loads are unaligned loads of in-bounds f32 values; the stores write lanes
    // 8v .. 8v + 8, v < nv, of each `[f32; N]` row of `acc`. AVX2 and FMA are enabled at
    // compile time (cfg above).
    unsafe {
        let mut c = [[_mm256_setzero_ps(); 2]; PW_MR];
        for kk in 0..k {
            let br = bp.add(kk * ldb);
            let b0 = _mm256_loadu_ps(br);
            let b1 = if nv > 1 {
                _mm256_loadu_ps(br.add(8))
            } else {
                b0
            };
            let ar = ap.add(kk * PW_MR);
            for (r, c) in c.iter_mut().enumerate() {
                let w = _mm256_broadcast_ss(&*ar.add(r));
                for (c, bv) in c.iter_mut().zip([b0, b1]).take(nv) {
                    *c = _mm256_fmadd_ps(w, bv, *c);
                }
            }
        }
        for (row, c) in acc.iter_mut().zip(c) {
            for (v, c) in c.iter().enumerate().take(nv) {
                _mm256_storeu_ps(row.as_mut_ptr().add(8 * v), *c);
            }
        }
    }
    true
}

/// Portable [`pw_tile_f32`] where AVX2 + FMA are not enabled at compile time.
#[cfg(not(all(
    target_arch = "x86_64",
    target_feature = "avx2",
    target_feature = "fma"
)))]
pub(crate) fn pw_tile_f32<const N: usize>(
    a: &[f32],
    b: &[f32],
    ldb: usize,
    k: usize,
    acc: &mut [[f32; N]; PW_MR],
) -> bool {
    pw_tile(a, b, ldb, k, acc)
}

/// One register block of the depthwise kernel: R output rows × 8·V pixels of one channel,
/// `out[r·8V + j] = Σ_taps w·buf[start + r·rstep + t + j]` (j < 8V), every sum one fused
/// multiply-add chain (input × weight + sum) in tap order starting from 0. Portable version.
///
/// Returns `false` (and leaves `out` alone) when `buf` or `out` is too short or R·V is 0.
pub(crate) fn dw_block<T: super::Real, const R: usize, const V: usize>(
    buf: &[T],
    (start, rstep): (usize, usize),
    taps: &[usize],
    wt: &[T],
    out: &mut [T],
) -> bool {
    let p = 8 * V;
    let tmax = taps.iter().copied().max().unwrap_or(0);
    if R * V == 0
        || out.len() < R * p
        || (!taps.is_empty() && buf.len() < start + (R - 1) * rstep + tmax + p)
    {
        return false;
    }
    let Some(out) = out.get_mut(..R * p) else {
        return false;
    };
    out.fill(T::ZERO);
    for (&t, &wv) in taps.iter().zip(wt) {
        for (r, acc) in out.chunks_exact_mut(p).enumerate() {
            let s0 = start + r * rstep + t;
            if let Some(src) = buf.get(s0..s0 + p) {
                for (a, &s) in acc.iter_mut().zip(src) {
                    *a = s.mul_add(wv, *a);
                }
            }
        }
    }
    true
}

/// [`dw_block`] for f32 with AVX2 + FMA: the R·V sums (R·V ≤ 8 in the engine's use) stay in
/// vector registers over all taps, one broadcast per tap and one load and fused multiply-add
/// per vector. Same chain as the portable version, hence the same bits.
#[cfg(all(
    target_arch = "x86_64",
    target_feature = "avx2",
    target_feature = "fma"
))]
#[inline(always)]
pub(crate) fn dw_block_f32<const R: usize, const V: usize>(
    buf: &[f32],
    (start, rstep): (usize, usize),
    taps: &[usize],
    wt: &[f32],
    out: &mut [f32],
) -> bool {
    use std::arch::x86_64::{
        _mm256_fmadd_ps, _mm256_loadu_ps, _mm256_set1_ps, _mm256_setzero_ps, _mm256_storeu_ps,
    };
    let p = 8 * V;
    let tmax = taps.iter().copied().max().unwrap_or(0);
    if R * V == 0
        || out.len() < R * p
        || (!taps.is_empty() && buf.len() < start + (R - 1) * rstep + tmax + p)
    {
        return false;
    }
    let (bp, op) = (buf.as_ptr(), out.as_mut_ptr());
    // SAFETY: for every tap t (≤ tmax) and row r < R the loads read
    // `buf[start + r·rstep + t + 8v .. + 8]`, v < V, below start + (R − 1)·rstep + tmax + 8V
    // ≤ buf.len() (checked above, taps non-empty whenever the loop runs); the stores write
    // `out[r·8V + 8v .. + 8]`, below R·8V ≤ out.len() (checked above). Unaligned loads and
    // stores of in-bounds f32 values. AVX2 and FMA are enabled at compile time (cfg above).
    unsafe {
        let mut acc = [[_mm256_setzero_ps(); V]; R];
        for (&t, &w) in taps.iter().zip(wt) {
            let wv = _mm256_set1_ps(w);
            for (r, acc) in acc.iter_mut().enumerate() {
                let src = bp.add(start + r * rstep + t);
                for (v, a) in acc.iter_mut().enumerate() {
                    *a = _mm256_fmadd_ps(_mm256_loadu_ps(src.add(8 * v)), wv, *a);
                }
            }
        }
        for (r, acc) in acc.iter().enumerate() {
            for (v, a) in acc.iter().enumerate() {
                _mm256_storeu_ps(op.add(r * p + 8 * v), *a);
            }
        }
    }
    true
}

/// Portable [`dw_block_f32`] where AVX2 + FMA are not enabled at compile time.
#[cfg(not(all(
    target_arch = "x86_64",
    target_feature = "avx2",
    target_feature = "fma"
)))]
pub(crate) fn dw_block_f32<const R: usize, const V: usize>(
    buf: &[f32],
    at: (usize, usize),
    taps: &[usize],
    wt: &[f32],
    out: &mut [f32],
) -> bool {
    dw_block::<f32, R, V>(buf, at, taps, wt, out)
}

/// `ops::clip_minmax` for f32 with AVX2: Clip(x) = min(max(x, lo), hi) in place (x < lo →
/// lo, else x > hi → hi, else x; NaN kept), returning the smallest and largest input (NaN
/// ignored; +∞ and −∞ for no input). Per 8 lanes: `min_ps(v, m)` is v < m ? v : m (the
/// portable select), `max_ps(v, m)` is v > m ? v : m, `min_ps(hi, v)` is hi < v ? hi : v
/// (x > hi → hi, NaN and ±0 kept), then a blend to lo where x < lo. The same values and bits
/// as the portable loop; the tail (< 8 values) runs the scalar select.
#[cfg(all(target_arch = "x86_64", target_feature = "avx2"))]
pub(crate) fn clip_minmax_f32(x: &mut [f32], lo: f32, hi: f32) -> (f64, f64) {
    use std::arch::x86_64::{
        _mm256_blendv_ps, _mm256_cmp_ps, _mm256_loadu_ps, _mm256_max_ps, _mm256_min_ps,
        _mm256_set1_ps, _mm256_storeu_ps, _CMP_LT_OQ,
    };
    let mut mn = [f32::INFINITY; 8];
    let mut mx = [f32::NEG_INFINITY; 8];
    let mut chunks = x.chunks_exact_mut(8);
    // SAFETY: every chunk has exactly 8 f32 values, loaded and stored with unaligned 8-lane
    // operations; `mn` and `mx` are `[f32; 8]`. AVX2 is enabled at compile time (cfg above).
    unsafe {
        let (lov, hiv) = (_mm256_set1_ps(lo), _mm256_set1_ps(hi));
        let mut vmn = _mm256_set1_ps(f32::INFINITY);
        let mut vmx = _mm256_set1_ps(f32::NEG_INFINITY);
        for c in &mut chunks {
            let v = _mm256_loadu_ps(c.as_ptr());
            vmn = _mm256_min_ps(v, vmn);
            vmx = _mm256_max_ps(v, vmx);
            let t = _mm256_min_ps(hiv, v);
            let r = _mm256_blendv_ps(t, lov, _mm256_cmp_ps::<_CMP_LT_OQ>(v, lov));
            _mm256_storeu_ps(c.as_mut_ptr(), r);
        }
        _mm256_storeu_ps(mn.as_mut_ptr(), vmn);
        _mm256_storeu_ps(mx.as_mut_ptr(), vmx);
    }
    for ((v, a), b) in chunks
        .into_remainder()
        .iter_mut()
        .zip(mn.iter_mut())
        .zip(mx.iter_mut())
    {
        *a = if *v < *a { *v } else { *a };
        *b = if *v > *b { *v } else { *b };
        *v = if *v < lo {
            lo
        } else if *v > hi {
            hi
        } else {
            *v
        };
    }
    (
        mn.iter().fold(f64::INFINITY, |a, &v| {
            let v = f64::from(v);
            if v < a {
                v
            } else {
                a
            }
        }),
        mx.iter().fold(f64::NEG_INFINITY, |a, &v| {
            let v = f64::from(v);
            if v > a {
                v
            } else {
                a
            }
        }),
    )
}

/// Values per chunk of the batched composite-polynomial evaluation.
pub(crate) const POLY_CHUNK: usize = 32;

/// y ← p_k(…p_1(y)) for a chunk of 32 values, each component an odd polynomial given by its
/// odd coefficients `[c_1, c_3, …]`, evaluated as y·q(y²) with q by Horner's rule (fused
/// multiply-add, highest coefficient first) — the same operations in the same order on
/// every code path, so the same bits.
pub(crate) fn composite_odd_chunk(y: &mut [f64; POLY_CHUNK], comps: &[Vec<f64>]) {
    #[cfg(all(
        target_arch = "x86_64",
        target_feature = "avx2",
        target_feature = "fma"
    ))]
    composite_odd_chunk_avx(y, comps);
    #[cfg(not(all(
        target_arch = "x86_64",
        target_feature = "avx2",
        target_feature = "fma"
    )))]
    composite_odd_chunk_portable(y, comps);
}

#[cfg_attr(
    all(
        target_arch = "x86_64",
        target_feature = "avx2",
        target_feature = "fma"
    ),
    allow(dead_code)
)]
fn composite_odd_chunk_portable(y: &mut [f64; POLY_CHUNK], comps: &[Vec<f64>]) {
    for c in comps {
        let Some((&last, rest)) = c.split_last() else {
            continue;
        };
        let mut t = [0.0f64; POLY_CHUNK];
        for (t, &v) in t.iter_mut().zip(y.iter()) {
            *t = v * v;
        }
        let mut acc = [last; POLY_CHUNK];
        for &cj in rest.iter().rev() {
            for (a, &t) in acc.iter_mut().zip(&t) {
                *a = a.mul_add(t, cj);
            }
        }
        for (v, a) in y.iter_mut().zip(&acc) {
            *v *= *a;
        }
    }
}

/// AVX2 + FMA version of [`composite_odd_chunk`]: eight independent 4-lane Horner chains
/// kept in registers across the coefficient loop (y² read from memory as the FMA operand).
#[cfg(all(
    target_arch = "x86_64",
    target_feature = "avx2",
    target_feature = "fma"
))]
#[inline]
fn composite_odd_chunk_avx(y: &mut [f64; POLY_CHUNK], comps: &[Vec<f64>]) {
    use std::arch::x86_64::{
        __m256d, _mm256_fmadd_pd, _mm256_loadu_pd, _mm256_mul_pd, _mm256_set1_pd, _mm256_storeu_pd,
    };
    let p = y.as_mut_ptr();
    // SAFETY: `y` has 32 = 8·4 f64 values; lane group g reads and writes `p + 4g .. p + 4g + 4`
    // for g < 8 (unaligned loads/stores of in-bounds values). `t` is a local array of 8
    // vectors. AVX2 and FMA are enabled at compile time (cfg above).
    unsafe {
        let mut x: [__m256d; 8] = [
            _mm256_loadu_pd(p),
            _mm256_loadu_pd(p.add(4)),
            _mm256_loadu_pd(p.add(8)),
            _mm256_loadu_pd(p.add(12)),
            _mm256_loadu_pd(p.add(16)),
            _mm256_loadu_pd(p.add(20)),
            _mm256_loadu_pd(p.add(24)),
            _mm256_loadu_pd(p.add(28)),
        ];
        for c in comps {
            let Some((&last, rest)) = c.split_last() else {
                continue;
            };
            let t: [__m256d; 8] = x.map(|v| _mm256_mul_pd(v, v));
            let l = _mm256_set1_pd(last);
            let (mut a0, mut a1, mut a2, mut a3) = (l, l, l, l);
            let (mut a4, mut a5, mut a6, mut a7) = (l, l, l, l);
            let [t0, t1, t2, t3, t4, t5, t6, t7] = t;
            for &cj in rest.iter().rev() {
                let cv = _mm256_set1_pd(cj);
                a0 = _mm256_fmadd_pd(a0, t0, cv);
                a1 = _mm256_fmadd_pd(a1, t1, cv);
                a2 = _mm256_fmadd_pd(a2, t2, cv);
                a3 = _mm256_fmadd_pd(a3, t3, cv);
                a4 = _mm256_fmadd_pd(a4, t4, cv);
                a5 = _mm256_fmadd_pd(a5, t5, cv);
                a6 = _mm256_fmadd_pd(a6, t6, cv);
                a7 = _mm256_fmadd_pd(a7, t7, cv);
            }
            let [x0, x1, x2, x3, x4, x5, x6, x7] = x;
            x = [
                _mm256_mul_pd(x0, a0),
                _mm256_mul_pd(x1, a1),
                _mm256_mul_pd(x2, a2),
                _mm256_mul_pd(x3, a3),
                _mm256_mul_pd(x4, a4),
                _mm256_mul_pd(x5, a5),
                _mm256_mul_pd(x6, a6),
                _mm256_mul_pd(x7, a7),
            ];
        }
        for (g, v) in x.into_iter().enumerate() {
            _mm256_storeu_pd(p.add(4 * g), v);
        }
    }
}

/// r̃_α(x) = (x + x·p(x/B))/2 in place over f32 values, evaluated in f64 (see
/// `SignKernel::relu_in_place_stats`, whose portable loop this is the AVX2 + FMA version of:
/// same operations, same order, same bits). Returns (count of |x| > B, max |x|, NaN ignored).
///
/// Dispatches at run time to an AVX-512 version where the CPU has AVX-512F (same operations
/// per lane, so the same bits; 8-lane registers and 32 of them halve the instruction count).
#[cfg(all(
    target_arch = "x86_64",
    target_feature = "avx2",
    target_feature = "fma"
))]
pub(crate) fn relu_poly_f32(x: &mut [f32], b: f64, comps: &[Vec<f64>]) -> (u64, f64) {
    if std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: the CPU supports AVX-512F (checked on the line above), the only feature
        // `relu_poly_f32_avx512` enables beyond the compile-time ones.
        unsafe { relu_poly_f32_avx512(x, b, comps) }
    } else {
        relu_poly_f32_avx2(x, b, comps)
    }
}

/// `$call` with the const `$g` = ⌈`$n`/8⌉ (1..=8; 8 for anything larger), or `$empty` for
/// `$n` = 0: the group count of the AVX-512 r̃_α kernels that holds a last partial chunk of
/// `$n` < 64 values in one chunk.
#[cfg(all(
    target_arch = "x86_64",
    target_feature = "avx2",
    target_feature = "fma"
))]
macro_rules! by_tail_groups {
    ($n:expr, $empty:expr, $g:ident => $call:expr) => {
        match $n.div_ceil(8) {
            0 => $empty,
            1 => {
                const $g: usize = 1;
                $call
            }
            2 => {
                const $g: usize = 2;
                $call
            }
            3 => {
                const $g: usize = 3;
                $call
            }
            4 => {
                const $g: usize = 4;
                $call
            }
            5 => {
                const $g: usize = 5;
                $call
            }
            6 => {
                const $g: usize = 6;
                $call
            }
            7 => {
                const $g: usize = 7;
                $call
            }
            _ => {
                const $g: usize = 8;
                $call
            }
        }
    };
}

/// 8-lane f64 vectors per chunk of the AVX-512F r̃_α kernel: eight (64 values). The bench
/// machine is a Zen 5 core (family 26) with two full-width 512-bit FMA pipes and a 4-cycle
/// FMA latency, so 8 independent Horner chains keep both pipes busy (measured peak 68 G f64
/// lane multiply-adds/s with ≥ 12 chains, 51 with 6, 34 with AVX2). `relu_alpha14_f32/16384`,
/// quiet machine, one run (2026-12-07): 6 → 15.0 µs, 8 → 12.8 µs, 10 → 33.1 µs, 12 → 32.9 µs
/// (from 10 on, x, y, y² and the accumulators no longer fit the 32 registers and spill).
const AVX512_GROUPS: usize = 8;

/// [`relu_poly_f32_avx512_g`] with [`AVX512_GROUPS`] on the whole chunks, and on the last
/// partial chunk the smallest group count that holds it, so that a short slice (a 7×7 plane,
/// the tail of a row block) does not evaluate up to 63 padding values.
#[cfg(all(
    target_arch = "x86_64",
    target_feature = "avx2",
    target_feature = "fma"
))]
#[target_feature(enable = "avx512f")]
fn relu_poly_f32_avx512(x: &mut [f32], b: f64, comps: &[Vec<f64>]) -> (u64, f64) {
    const C: usize = 8 * AVX512_GROUPS;
    let (head, tail) = x.split_at_mut(x.len() / C * C);
    let (c1, m1) = relu_poly_f32_avx512_g::<AVX512_GROUPS>(head, b, comps);
    let (c2, m2) =
        by_tail_groups!(tail.len(), (0, 0.0), T => relu_poly_f32_avx512_g::<T>(tail, b, comps));
    (c1 + c2, m1.max(m2))
}

/// AVX-512F version of [`relu_poly_f32`]: chunks of 8·G values, G 8-lane f64 vectors, the
/// Horner chains of each component in registers.
///
/// The statistics are taken on the f32 inputs with 256-bit operations (half the cost of the
/// 512-bit f64 ones on Zen 4's double-pumped pipes): a running max of |x| (exact: |x| and a
/// maximum need no rounding, and f32 → f64 is exact), and per chunk one test of the chunk's
/// max against `b32`, the largest f32 ≤ B; for an f32 value, |x| > B ⇔ |x| > `b32`, so only a
/// chunk with some |x| > B is counted value by value (rarely: B covers the calibration set).
#[cfg(all(
    target_arch = "x86_64",
    target_feature = "avx2",
    target_feature = "fma"
))]
#[target_feature(enable = "avx512f")]
fn relu_poly_f32_avx512_g<const G: usize>(x: &mut [f32], b: f64, comps: &[Vec<f64>]) -> (u64, f64) {
    use std::arch::x86_64::{
        _mm256_andnot_ps, _mm256_cmp_ps, _mm256_loadu_ps, _mm256_max_ps, _mm256_movemask_ps,
        _mm256_set1_ps, _mm256_setzero_ps, _mm256_storeu_ps, _mm512_cvtpd_ps, _mm512_cvtps_pd,
        _mm512_fmadd_pd, _mm512_mul_pd, _mm512_set1_pd, _mm512_setzero_pd, _CMP_GT_OQ,
    };
    let inv = 1.0 / b;
    let b32 = f32_at_most(b);
    let mut count = 0u64;
    let mut maxv = [0.0f32; 8];
    let (invv, half) = (_mm512_set1_pd(inv), _mm512_set1_pd(0.5));
    let (sign, bv) = (_mm256_set1_ps(-0.0), _mm256_set1_ps(b32));
    let mut m = _mm256_setzero_ps();
    let c_len = 8 * G;
    let mut pad = [[0.0f32; 8]; G];
    for chunk in x.chunks_mut(c_len) {
        let full = chunk.len() == c_len;
        // A partial chunk is padded with 0 (neither outside nor above the maximum) in the
        // local array `pad`, evaluated there and copied back.
        let vals: &mut [f32] = if full {
            chunk
        } else {
            pad = [[0.0; 8]; G];
            if let Some(p) = pad.as_flattened_mut().get_mut(..chunk.len()) {
                p.copy_from_slice(chunk);
            }
            pad.as_flattened_mut()
        };
        let mut xv = [_mm512_setzero_pd(); G];
        let mut cm = _mm256_setzero_ps();
        // SAFETY: `vals` has C = 8·G f32 values, read and written in groups `8g .. 8g + 8`,
        // g < G.
        unsafe {
            for (g, v) in xv.iter_mut().enumerate() {
                let xf = _mm256_loadu_ps(vals.as_ptr().add(8 * g));
                // max(|x|, cm) = |x| > cm ? |x| : cm, so a NaN leaves cm unchanged.
                cm = _mm256_max_ps(_mm256_andnot_ps(sign, xf), cm);
                *v = _mm512_cvtps_pd(xf);
            }
        }
        if _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_GT_OQ>(cm, bv)) != 0 {
            count += vals
                .iter()
                .map(|&v| u64::from(f64::from(v).abs() > b))
                .sum::<u64>();
        }
        m = _mm256_max_ps(cm, m);
        let mut y = xv.map(|v| _mm512_mul_pd(v, invv));
        for c in comps {
            let Some((&last, rest)) = c.split_last() else {
                continue;
            };
            let t = y.map(|v| _mm512_mul_pd(v, v));
            let mut a = [_mm512_set1_pd(last); G];
            for &cj in rest.iter().rev() {
                let cv = _mm512_set1_pd(cj);
                for (a, t) in a.iter_mut().zip(&t) {
                    *a = _mm512_fmadd_pd(*a, *t, cv);
                }
            }
            for (y, a) in y.iter_mut().zip(&a) {
                *y = _mm512_mul_pd(*y, *a);
            }
        }
        // SAFETY: as above (groups `8g .. 8g + 8`, g < G, of `vals`).
        unsafe {
            for (g, (&v, &p)) in xv.iter().zip(&y).enumerate() {
                let r = _mm512_mul_pd(half, _mm512_fmadd_pd(v, p, v));
                _mm256_storeu_ps(vals.as_mut_ptr().add(8 * g), _mm512_cvtpd_ps(r));
            }
        }
        if !full {
            if let Some(p) = pad.as_flattened().get(..chunk.len()) {
                chunk.copy_from_slice(p);
            }
        }
    }
    // SAFETY: `maxv` holds 8 f32 values.
    unsafe { _mm256_storeu_ps(maxv.as_mut_ptr(), m) };
    (
        count,
        maxv.iter().fold(0.0, |a: f64, &v| a.max(f64::from(v))),
    )
}

/// The largest f32 that is ≤ `b` (f32::MAX for b beyond it; b is not NaN). For an f32
/// value v: v > b ⇔ v > `f32_at_most(b)`, since no f32 lies strictly between the two.
#[cfg_attr(
    not(all(
        target_arch = "x86_64",
        target_feature = "avx2",
        target_feature = "fma"
    )),
    allow(dead_code)
)]
fn f32_at_most(b: f64) -> f32 {
    #[expect(
        clippy::cast_possible_truncation,
        reason = "rounded to nearest, then stepped down"
    )]
    let r = b as f32;
    if f64::from(r) > b {
        r.next_down()
    } else {
        r
    }
}

/// AVX2 + FMA version of [`relu_poly_f32`].
#[cfg(all(
    target_arch = "x86_64",
    target_feature = "avx2",
    target_feature = "fma"
))]
fn relu_poly_f32_avx2(x: &mut [f32], b: f64, comps: &[Vec<f64>]) -> (u64, f64) {
    use std::arch::x86_64::{
        _mm256_andnot_pd, _mm256_castpd_si256, _mm256_cmp_pd, _mm256_cvtpd_ps, _mm256_cvtps_pd,
        _mm256_fmadd_pd, _mm256_loadu_pd, _mm256_max_pd, _mm256_mul_pd, _mm256_set1_pd,
        _mm256_setzero_pd, _mm256_setzero_si256, _mm256_storeu_pd, _mm256_storeu_si256,
        _mm256_sub_epi64, _mm_loadu_ps, _mm_storeu_ps, _CMP_GT_OQ,
    };
    let inv = 1.0 / b;
    let mut count = [0u64; 4];
    let mut maxv = [0.0f64; 4];
    // SAFETY: every chunk has `len ≤ 32` values; full chunks load and store f32 groups
    // `4g .. 4g + 4` for g < 8 of the chunk, partial chunks go through the local array `xs`
    // (copied in and out with safe slices). `xs` and `u` are local `[f64; 32]` arrays accessed
    // at `4g .. 4g + 4`, g < 8. AVX2 and FMA are enabled at compile time (cfg above).
    unsafe {
        let (bv, invv, half) = (_mm256_set1_pd(b), _mm256_set1_pd(inv), _mm256_set1_pd(0.5));
        let sign = _mm256_set1_pd(-0.0);
        let mut cnt = _mm256_setzero_si256();
        let mut m = _mm256_setzero_pd();
        let mut xs = [0.0f64; POLY_CHUNK];
        let mut u = [0.0f64; POLY_CHUNK];
        for chunk in x.chunks_mut(POLY_CHUNK) {
            let full = chunk.len() == POLY_CHUNK;
            if full {
                for g in 0..8 {
                    let v = _mm256_cvtps_pd(_mm_loadu_ps(chunk.as_ptr().add(4 * g)));
                    _mm256_storeu_pd(xs.as_mut_ptr().add(4 * g), v);
                }
            } else {
                xs = [0.0; POLY_CHUNK];
                for (d, s) in xs.iter_mut().zip(chunk.iter()) {
                    *d = f64::from(*s);
                }
            }
            for g in 0..8 {
                let v = _mm256_loadu_pd(xs.as_ptr().add(4 * g));
                let a = _mm256_andnot_pd(sign, v);
                // All-ones (−1 as i64) where |x| > B; padding lanes are 0.
                cnt =
                    _mm256_sub_epi64(cnt, _mm256_castpd_si256(_mm256_cmp_pd::<_CMP_GT_OQ>(a, bv)));
                // max(a, m) = a > m ? a : m, so a NaN `a` leaves m unchanged.
                m = _mm256_max_pd(a, m);
                _mm256_storeu_pd(u.as_mut_ptr().add(4 * g), _mm256_mul_pd(v, invv));
            }
            composite_odd_chunk_avx(&mut u, comps);
            if full {
                for g in 0..8 {
                    let v = _mm256_loadu_pd(xs.as_ptr().add(4 * g));
                    let p = _mm256_loadu_pd(u.as_ptr().add(4 * g));
                    let r = _mm256_mul_pd(half, _mm256_fmadd_pd(v, p, v));
                    _mm_storeu_ps(chunk.as_mut_ptr().add(4 * g), _mm256_cvtpd_ps(r));
                }
            } else {
                for (d, (v, p)) in chunk.iter_mut().zip(xs.iter().zip(u.iter())) {
                    #[expect(clippy::cast_possible_truncation, reason = "rounding to f32")]
                    {
                        *d = (0.5 * v.mul_add(*p, *v)) as f32;
                    }
                }
            }
        }
        _mm256_storeu_si256(count.as_mut_ptr().cast(), cnt);
        _mm256_storeu_pd(maxv.as_mut_ptr(), m);
    }
    (count.iter().sum(), maxv.iter().fold(0.0, |a, &v| a.max(v)))
}

/// Both ReLUs of an approximate Clip, x ← a + r̃_α(x − a; B_lo) − r̃_α(x − b; B_hi) (ReLU6 with
/// a = 0, b = 6), in one pass over f32 values: the same operations per value as
/// `SignKernel::clip_in_place_stats`'s two-pass loop (shifted values t = x − a and x − b
/// formed in f32, r̃_α in f64 as in [`relu_poly_f32`], rounded to f32, then (a + r_lo) − r_hi
/// in f32), so the same bits, without its two staging buffers. `lower` and `upper` are
/// (shift, B). Returns per side (count of |t| > B, max |t|, NaN ignored), or `None` where the
/// CPU lacks AVX-512F (the caller then runs the two-pass loop).
#[cfg(all(
    target_arch = "x86_64",
    target_feature = "avx2",
    target_feature = "fma"
))]
pub(crate) fn clip_poly_f32(
    x: &mut [f32],
    lower: (f64, f64),
    upper: (f64, f64),
    comps: &[Vec<f64>],
) -> Option<[(u64, f64); 2]> {
    if std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: the CPU supports AVX-512F (checked on the line above), the only feature
        // `clip_poly_f32_avx512` enables beyond the compile-time ones.
        Some(unsafe { clip_poly_f32_avx512(x, [lower, upper], comps) })
    } else {
        None
    }
}

/// 8-lane f64 vectors per side and chunk of [`clip_poly_f32_avx512`]: six per side, so twelve
/// Horner chains in flight (see [`AVX512_GROUPS`]). `relu6_alpha14_f32/16384`, quiet machine,
/// one run (2026-12-07): 3 → 30.2 µs, 4 → 26.2 µs, 5 → 24.6 µs, 6 → 24.5 µs (the FMA peak
/// would give 20.7 µs); the EfficientNet-Lite0 α = 14 batch of 16 (`efficientnet` bench, one
/// thread, same quiet window): 3 → 324 ms, 6 → 288 ms.
const CLIP_GROUPS: usize = 6;

/// [`clip_poly_f32_avx512_g`] with [`CLIP_GROUPS`] on the whole chunks and the smallest group
/// count that holds the last partial chunk (as [`relu_poly_f32_avx512`]).
#[cfg(all(
    target_arch = "x86_64",
    target_feature = "avx2",
    target_feature = "fma"
))]
#[target_feature(enable = "avx512f")]
fn clip_poly_f32_avx512(
    x: &mut [f32],
    sides: [(f64, f64); 2],
    comps: &[Vec<f64>],
) -> [(u64, f64); 2] {
    const C: usize = 8 * CLIP_GROUPS;
    let (head, tail) = x.split_at_mut(x.len() / C * C);
    let a = clip_poly_f32_avx512_g::<CLIP_GROUPS>(head, sides, comps);
    let b = by_tail_groups!(tail.len(), [(0, 0.0); 2], T => clip_poly_f32_avx512_g::<T>(tail, sides, comps));
    let [(c0, m0), (c1, m1)] = a;
    let [(d0, n0), (d1, n1)] = b;
    [(c0 + d0, m0.max(n0)), (c1 + d1, m1.max(n1))]
}

/// AVX-512F body of [`clip_poly_f32`]: chunks of 8·G values, each giving G 8-lane f64
/// vectors per side. Statistics as in [`relu_poly_f32_avx512`], per side. A partial chunk is
/// padded with copies of its first value, which change neither the maximum nor (the count
/// being redone value by value over the real values only) the count.
#[cfg(all(
    target_arch = "x86_64",
    target_feature = "avx2",
    target_feature = "fma"
))]
#[target_feature(enable = "avx512f")]
fn clip_poly_f32_avx512_g<const G: usize>(
    x: &mut [f32],
    sides: [(f64, f64); 2],
    comps: &[Vec<f64>],
) -> [(u64, f64); 2] {
    use std::arch::x86_64::{
        _mm256_add_ps, _mm256_andnot_ps, _mm256_cmp_ps, _mm256_cvtss_f32, _mm256_loadu_ps,
        _mm256_max_ps, _mm256_movemask_ps, _mm256_set1_ps, _mm256_setzero_ps, _mm256_storeu_ps,
        _mm256_sub_ps, _mm512_cvtpd_ps, _mm512_cvtps_pd, _mm512_fmadd_pd, _mm512_mul_pd,
        _mm512_set1_pd, _mm512_setzero_pd, _CMP_GT_OQ,
    };
    #[expect(
        clippy::cast_possible_truncation,
        reason = "the shift rounded to f32 as the engine's from_f64 does"
    )]
    let shift32 = sides.map(|(s, _)| s as f32);
    let shv = shift32.map(|s| _mm256_set1_ps(s));
    let bv = sides.map(|(_, b)| _mm256_set1_ps(f32_at_most(b)));
    let invv = sides.map(|(_, b)| _mm512_set1_pd(1.0 / b));
    let half = _mm512_set1_pd(0.5);
    let sign = _mm256_set1_ps(-0.0);
    let mut count = [0u64; 2];
    let mut m = [_mm256_setzero_ps(); 2];
    let c_len = 8 * G;
    let mut pad = [[0.0f32; 8]; G];
    for chunk in x.chunks_mut(c_len) {
        let len = chunk.len();
        let full = len == c_len;
        let vals: &mut [f32] = if full {
            chunk
        } else {
            pad = [[chunk.first().copied().unwrap_or(0.0); 8]; G];
            if let Some(p) = pad.as_flattened_mut().get_mut(..len) {
                p.copy_from_slice(chunk);
            }
            pad.as_flattened_mut()
        };
        // The shifted values t = x − shift per side (f32 subtraction, then widened exactly).
        let mut xf = [_mm256_setzero_ps(); G];
        // SAFETY: `vals` has C = 8·G f32 values, read in groups `8g .. 8g + 8`, g < G.
        unsafe {
            for (g, v) in xf.iter_mut().enumerate() {
                *v = _mm256_loadu_ps(vals.as_ptr().add(8 * g));
            }
        }
        let mut td = [[_mm512_setzero_pd(); G]; 2];
        for ((((td, &sh), &bs), ms), (cnt, &(_, b))) in td
            .iter_mut()
            .zip(&shv)
            .zip(&bv)
            .zip(m.iter_mut())
            .zip(count.iter_mut().zip(&sides))
        {
            let mut cm = _mm256_setzero_ps();
            for (d, &v) in td.iter_mut().zip(&xf) {
                let t = _mm256_sub_ps(v, sh);
                // max(|t|, cm) = |t| > cm ? |t| : cm, so a NaN leaves cm unchanged.
                cm = _mm256_max_ps(_mm256_andnot_ps(sign, t), cm);
                *d = _mm512_cvtps_pd(t);
            }
            if _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_GT_OQ>(cm, bs)) != 0 {
                let sh32 = _mm256_cvtss_f32(sh);
                *cnt += vals
                    .iter()
                    .take(len)
                    .map(|&v| u64::from(f64::from(v - sh32).abs() > b))
                    .sum::<u64>();
            }
            *ms = _mm256_max_ps(cm, *ms);
        }
        // The 2·G Horner chains of p_α(t/B), side by side.
        let mut y = [[_mm512_setzero_pd(); G]; 2];
        for ((y, t), &inv) in y.iter_mut().zip(&td).zip(&invv) {
            for (y, &t) in y.iter_mut().zip(t) {
                *y = _mm512_mul_pd(t, inv);
            }
        }
        let y = y.as_flattened_mut();
        for c in comps {
            let Some((&last, rest)) = c.split_last() else {
                continue;
            };
            let mut t = [[_mm512_setzero_pd(); G]; 2];
            let t = t.as_flattened_mut();
            for (t, &v) in t.iter_mut().zip(y.iter()) {
                *t = _mm512_mul_pd(v, v);
            }
            let mut a = [[_mm512_set1_pd(last); G]; 2];
            let a = a.as_flattened_mut();
            for &cj in rest.iter().rev() {
                let cv = _mm512_set1_pd(cj);
                for (a, t) in a.iter_mut().zip(t.iter()) {
                    *a = _mm512_fmadd_pd(*a, *t, cv);
                }
            }
            for (y, a) in y.iter_mut().zip(a.iter()) {
                *y = _mm512_mul_pd(*y, *a);
            }
        }
        // r = (t + t·p)/2 rounded to f32, per side; then x ← (a + r_lo) − r_hi in f32.
        let mut r = [[_mm256_setzero_ps(); G]; 2];
        for (r, (&t, &p)) in r
            .as_flattened_mut()
            .iter_mut()
            .zip(td.as_flattened().iter().zip(y.iter()))
        {
            *r = _mm512_cvtpd_ps(_mm512_mul_pd(half, _mm512_fmadd_pd(t, p, t)));
        }
        let [r_lo, r_hi] = r;
        let [sh_lo, _] = shv;
        // SAFETY: as above (groups `8g .. 8g + 8`, g < G, of `vals`), now written.
        unsafe {
            for (g, (&l, &h)) in r_lo.iter().zip(&r_hi).enumerate() {
                let v = _mm256_sub_ps(_mm256_add_ps(sh_lo, l), h);
                _mm256_storeu_ps(vals.as_mut_ptr().add(8 * g), v);
            }
        }
        if !full {
            if let Some(p) = pad.as_flattened().get(..len) {
                chunk.copy_from_slice(p);
            }
        }
    }
    let mut out = [(0u64, 0.0f64); 2];
    for ((o, &c), &mv) in out.iter_mut().zip(&count).zip(&m) {
        let mut lanes = [0.0f32; 8];
        // SAFETY: `lanes` holds 8 f32 values.
        unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), mv) };
        *o = (c, lanes.iter().fold(0.0, |a: f64, &v| a.max(f64::from(v))));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_product_matches_hand_computation() {
        // [1 2; 3 4] · [5 6; 7 8] = [19 22; 43 50]
        let mut c = [0.0f32; 4];
        assert!(sgemm(
            2,
            2,
            2,
            &[1., 2., 3., 4.],
            &[5., 6., 7., 8.],
            &mut c,
            false
        ));
        assert_eq!(c, [19., 22., 43., 50.]);
        let mut d = [1.0f64; 4];
        assert!(dgemm(
            2,
            2,
            2,
            &[1., 2., 3., 4.],
            &[5., 6., 7., 8.],
            &mut d,
            true
        ));
        assert_eq!(d, [20., 23., 44., 51.]);
        assert!(!sgemm(
            2,
            2,
            2,
            &[1., 2., 3.],
            &[5., 6., 7., 8.],
            &mut c,
            false
        ));
    }

    #[test]
    fn composite_chunk_matches_portable_bit_for_bit() {
        // The dispatched kernel (AVX2 + FMA here) against the portable loop, on a composite
        // of three odd polynomials with awkward coefficients and inputs across [−1.2, 1.2].
        let comps = vec![
            vec![1.5, -0.5],
            vec![3.1, -7.3, 9.25, -4.4, 0.75],
            vec![],
            vec![2.0, -1.25, 0.3],
        ];
        let mut r = 12345u64;
        for _ in 0..50 {
            let mut y = [0.0f64; POLY_CHUNK];
            for v in &mut y {
                r = r
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                *v = ((r >> 11) as f64 / (1u64 << 53) as f64) * 2.4 - 1.2;
            }
            let mut a = y;
            let mut b = y;
            composite_odd_chunk(&mut a, &comps);
            composite_odd_chunk_portable(&mut b, &comps);
            assert_eq!(a.map(f64::to_bits), b.map(f64::to_bits));
            // And against a scalar evaluation.
            for (got, x) in a.iter().zip(&y) {
                let mut v = *x;
                for c in &comps {
                    let t = v * v;
                    let q = c.iter().rev().fold(None, |acc: Option<f64>, &cj| {
                        Some(acc.map_or(cj, |a| a.mul_add(t, cj)))
                    });
                    if let Some(q) = q {
                        v *= q;
                    }
                }
                assert_eq!(got.to_bits(), v.to_bits());
            }
        }
    }

    /// Both f32 r̃_α kernels (AVX2 always, AVX-512F where the CPU has it) against a scalar
    /// evaluation: same bits, same out-of-range count, same max |x| (NaN ignored), on a
    /// length that leaves partial chunks for both.
    #[cfg(all(
        target_arch = "x86_64",
        target_feature = "avx2",
        target_feature = "fma"
    ))]
    #[test]
    fn f32_at_most_gives_the_same_comparison_as_f64() {
        let mut r = 99u64;
        let mut bs = vec![
            1.0,
            4.5,
            1e-45,
            1e-300,
            3.5e38,
            1e300,
            f64::from(f32::MAX),
            0.1,
        ];
        for _ in 0..2000 {
            r = r
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            bs.push(f64::from_bits(
                0x3000_0000_0000_0000 + (r >> 2) % 0x1800_0000_0000_0000,
            ));
        }
        for b in bs {
            let b32 = f32_at_most(b);
            assert!(f64::from(b32) <= b, "{b}");
            let near = [b32.next_down(), b32, b32.next_up(), b32.next_up().next_up()];
            for v in near.into_iter().chain([f32::INFINITY, 0.0, f32::MAX]) {
                assert_eq!(f64::from(v) > b, v > b32, "b = {b:e}, v = {v:e}");
            }
        }
    }

    #[test]
    fn f32_relu_kernels_match_scalar_bit_for_bit() {
        let comps: Vec<Vec<f64>> = vec![vec![1.5, -0.5], vec![3.1, -7.3, 9.25, -4.4, 0.75]];
        let b = 2.0f64;
        let mut r = 777u64;
        let mut xs: Vec<f32> = (0..203)
            .map(|_| {
                r = r
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((r >> 40) as f32 / (1u64 << 24) as f32) * 6.0 - 3.0
            })
            .collect();
        xs[17] = f32::NAN;
        xs[130] = f32::NAN;
        let mut want = xs.clone();
        let (mut n, mut m) = (0u64, 0.0f64);
        for v in &mut want {
            let x = f64::from(*v);
            n += u64::from(x.abs() > b);
            m = m.max(x.abs());
            let mut y = x * (1.0 / b);
            for c in &comps {
                let t = y * y;
                let (&last, rest) = c.split_last().unwrap();
                y *= rest.iter().rev().fold(last, |a, &cj| a.mul_add(t, cj));
            }
            *v = (0.5 * x.mul_add(y, x)) as f32;
        }
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        let mut a = xs.clone();
        assert_eq!(relu_poly_f32_avx2(&mut a, b, &comps), (n, m));
        assert_eq!(bits(&a), bits(&want));
        if std::arch::is_x86_feature_detected!("avx512f") {
            let mut c = xs.clone();
            // SAFETY: AVX-512F detected on the line above.
            assert_eq!(unsafe { relu_poly_f32_avx512(&mut c, b, &comps) }, (n, m));
            assert_eq!(bits(&c), bits(&want));
        }
    }
}
