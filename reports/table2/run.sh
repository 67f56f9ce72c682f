#!/usr/bin/env bash
# Table 2 runs on the full shared test files (issue 4).
cd "$(dirname "$0")/../.."; P=./target/release/polycert
S=../shared
out=reports/table2; mkdir -p $out
for m in mnist_cnn_small mnist_cnn_small_maxpool; do
  /usr/bin/time -v $P --quiet eval --model $S/models/$m.onnx --data $S/data/mnist/t10k-images-idx3-ubyte --alpha 4..14 --margin 1.1 --out-json $out/$m.json --out-md $out/$m.md > $out/$m.log 2> $out/$m.time
done
for m in resnet20_cifar10 vgg_small_cifar10 resnet32_cifar10 resnet44_cifar10; do
  /usr/bin/time -v $P --quiet eval --model $S/models/$m.onnx --data $S/data/cifar10/test_batch_jpeg.bin --alpha 4..14 --margin 1.1 --out-json $out/$m.json --out-md $out/$m.md > $out/$m.log 2> $out/$m.time
done
# the paper's fixed range B = 10 (Table 2 setting) for ResNet-20
$P --quiet eval --model $S/models/resnet20_cifar10.onnx --data $S/data/cifar10/test_batch_jpeg.bin --alpha 4..14 --b 10 --out-json $out/resnet20_cifar10_b10.json --out-md $out/resnet20_cifar10_b10.md > $out/resnet20_b10.log 2>&1

