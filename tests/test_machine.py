"""geodiv.machine: the description of the machine a study records, and what the report says with it."""

import json
import os
import subprocess
import sys

import torch

from geodiv.machine import cpu_model, describe_machine, machine_sentence
from geodiv.report.summary import summarise


def test_cpu_model_reads_the_first_model_name(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 9B14\n\n"
                    "processor\t: 1\nmodel name\t: Other CPU\n")
    assert cpu_model(info) == "AMD EPYC 9B14"
    # No such file (not Linux): the platform's own string, never an empty one.
    assert cpu_model(tmp_path / "missing") != ""


def test_describe_machine_is_json_and_names_torch_kernel_path():
    m = describe_machine()
    assert json.loads(json.dumps(m)) == m
    assert m["torch_cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert m["torch"] == torch.__version__ and m["cores"] == os.cpu_count()
    assert m["gpus"] == ([torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
                         if torch.cuda.is_available() else [])


def test_lowered_kernel_path_is_recorded():
    # ATEN_CPU_CAPABILITY=default puts ATen on its scalar kernels on any CPU; the record must say so, since those
    # kernels round differently from the vectorised ones (docs/training.md, "Determinism and resuming").
    code = "import json; from geodiv.machine import describe_machine; print(json.dumps(describe_machine()))"
    env = dict(os.environ, ATEN_CPU_CAPABILITY="default")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1])["torch_cpu_capability"] == "DEFAULT"


def test_report_summary_states_the_machine_only_when_recorded():
    machine = {"cpu": "AMD EPYC", "arch": "x86_64", "cores": 2, "torch_cpu_capability": "AVX512",
               "torch": "2.13.0+cpu", "numpy": "2.4.6", "gpus": []}
    text = summarise({}, {"machine": machine})
    assert machine_sentence(machine) in text
    assert "AMD EPYC (x86_64, 2 cores; PyTorch 2.13.0+cpu on its AVX512 kernels, numpy 2.4.6)" in text
    assert "same kind of CPU" in text
    assert "Machine:" not in summarise({}, {})  # studies written before the record: no line, no guess
    gpu = machine_sentence(dict(machine, gpus=["NVIDIA H200", "NVIDIA H200"]))
    assert "with 2 GPU(s): NVIDIA H200" in gpu
