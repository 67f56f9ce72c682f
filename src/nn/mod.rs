//! Networks: the IR, ONNX import, dataset readers and the plaintext engine (exact or with the
//! polynomial activations of paper §3).
