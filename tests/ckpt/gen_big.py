#!/usr/bin/python3
"""Writes a big-lama-sized PyTorch Lightning checkpoint for bench_ckpt.c:
200 MiB of 'generator.' tensors and 200 MiB of 'evaluator.' tensors.
Usage: gen_big.py OUT.ckpt"""
import collections
import sys

import torch

torch.manual_seed(0)
sd = collections.OrderedDict()
for i in range(50):
    sd["generator.model.%d.weight" % i] = torch.randn(256, 256, 4, 4)  # 4 MiB each
for i in range(50):
    sd["evaluator.net.%d.weight" % i] = torch.randn(256, 256, 4, 4)
torch.save({"epoch": 1, "state_dict": sd, "hyper_parameters": {"lr": 1e-3}}, sys.argv[1])
