//! The one place in `nn` with `unsafe`: safe wrappers over `matrixmultiply`'s raw-pointer
//! sgemm/dgemm. Every call checks the slice lengths first.
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
}
