"""Monocular 3D detection (MonoTAKD): synthetic KITTI-format scenes, models, distillation and KITTI evaluation."""
