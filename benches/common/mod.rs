//! Set-up shared by the ResNet-20 throughput benches (`nn`, `alpha_ratio`) and the
//! EfficientNet-Lite0 ones (`efficientnet`, `efficientnet_nodes`).

use std::path::PathBuf;
use std::sync::Arc;

use polycert::nn::{
    calibrate, import_onnx, ActivationPolicy, DataFormat, Dataset, Engine, RangePolicy, SignKernel,
};

/// `../shared` when it holds the models.
pub fn shared() -> Option<PathBuf> {
    let p = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared"));
    p.join("models").is_dir().then_some(p)
}

/// `model` in f32, the first `n` preprocessed images of `data` (read as `format`, or by the
/// detection rule for `None`) and the α = 14 policy with B per layer = `margin` × the max
/// |input| calibrated on the same images. `None`, with the reason printed, when ../shared or
/// a step is missing.
fn load(
    what: &str,
    (model, data, format): (&str, &str, Option<DataFormat>),
    n: usize,
    margin: f64,
) -> Option<(Engine<f32>, Vec<Vec<f32>>, ActivationPolicy)> {
    let Some(s) = shared() else {
        eprintln!("skipping {what} benches: ../shared is absent");
        return None;
    };
    let (Ok(net), Ok(mut data)) = (
        import_onnx(&s.join(model)),
        Dataset::open(&s.join(data), format),
    ) else {
        eprintln!("skipping {what} benches: cannot read ../shared/{model} or ../shared/{data}");
        return None;
    };
    data.truncate(n);
    let engine: Engine<f32> = Engine::new(Arc::new(net));
    let xs: Vec<Vec<f32>> = (0..n)
        .filter_map(|i| {
            let mut x = Vec::new();
            engine.network().preprocess.apply(data.image(i)?, 3, &mut x);
            Some(x)
        })
        .collect();
    let ranges = calibrate(&engine, &data, None)
        .and_then(|mut c| c.choose(RangePolicy::PerLayer { margin }));
    let (Ok(sign), Ok(ranges)) = (polycert::remez::table1_sign(14), ranges) else {
        eprintln!("skipping {what} benches: table1_sign(14) or calibration failed");
        return None;
    };
    let approx = ActivationPolicy::Approx {
        sign: SignKernel::new(14, sign.poly()),
        ranges,
    };
    Some((engine, xs, approx))
}

/// ResNet-20 in f32, its first `n` preprocessed CIFAR-10 JPEG test images, and the α = 14
/// policy with B per layer calibrated on the same images (margin 1.0). `None`, with the
/// reason printed, when ../shared or a step is missing.
#[allow(dead_code, reason = "used by the ResNet-20 benches only")]
pub fn resnet20(n: usize) -> Option<(Engine<f32>, Vec<Vec<f32>>, ActivationPolicy)> {
    let files = (
        "models/resnet20_cifar10.onnx",
        "data/cifar10/test_batch_jpeg.bin",
        None,
    );
    load("ResNet-20", files, n, 1.0)
}

/// EfficientNet-Lite0 in f32, its first `n` preprocessed ImageNet records and the α = 14
/// policy (B per site = 1.1 × the max |input| calibrated on the same records); `None` with the
/// reason printed when ../shared or a step is missing.
#[allow(dead_code, reason = "used by the EfficientNet benches only")]
pub fn efficientnet(n: usize) -> Option<(Engine<f32>, Vec<Vec<f32>>, ActivationPolicy)> {
    let files = (
        "models/efficientnet_lite0_imagenet.onnx",
        "data/imagenet/imagenet_val500_224.bin",
        Some(DataFormat::Imagenet224),
    );
    load("EfficientNet", files, n, 1.1)
}
