#!/usr/bin/env bash
# Paper Table 3 on EfficientNet-Lite0 (issue 15): the 500 ImageNet validation records of
# ../shared, exact and α = 6..14, B per site = 1.1 × the max |input| calibrated on the same
# records. Writes reports/table3/table3.md and table3.json (the command is at their top).
cd "$(dirname "$0")/../.."
nice ./target/release/polycert --quiet eval --model ../shared/models/efficientnet_lite0_imagenet.onnx --data ../shared/data/imagenet/imagenet_val500_224.bin --format imagenet224 --alpha 6..14 --margin 1.1 --table3-out reports/table3
