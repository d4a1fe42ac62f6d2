"""Reading llama-perplexity's KL divergence output, including the runs whose closing summary llama.cpp's
logger dropped at exit (its log queue is not flushed: llama.cpp issue 22142). The lines are copied from
a real `llama-perplexity --kl-divergence` run of SmolLM2 Q4_K_M against F16 (16 chunks of 256)."""

import pytest

from distill.export.kld import parse_kld

CHUNKS = """
chunk             PPL               ln(PPL(Q)/PPL(base))          KL Divergence              Δp RMS            Same top p
   1       2.1277 ±    0.2371       0.15124 ±    0.03620       0.05520 ±    0.00830    11.232 ±  1.262 %    92.157 ±  1.687 %
  15       2.6046 ±    0.1018       0.13337 ±    0.00739       0.05140 ±    0.00187    10.634 ±  0.308 %    92.703 ±  0.596 %
  16       2.5688 ±    0.0958       0.13174 ±    0.00707       0.05091 ±    0.00181    10.607 ±  0.300 %    93.012 ±  0.566 %
"""
SUMMARY = """
====== KL divergence statistics ======
Mean    KLD:   0.050908 ±   0.001808
Maximum KLD:   1.181478
99.0%   KLD:   0.375449
Same top p: 93.012 ± 0.566 %
"""


def test_summary_adds_precision_and_percentiles():
    res = parse_kld(CHUNKS + SUMMARY, chunks=16)
    assert res["kld"] == 0.050908 and res["kld_se"] == 0.001808
    assert res["kld_p99"] == 0.375449 and res["kld_max"] == 1.181478
    assert res["top1_agreement"] == pytest.approx(0.93012) and res["perplexity"] == 2.5688


def test_lost_summary_falls_back_to_the_last_chunks_running_totals():
    res = parse_kld(CHUNKS, chunks=16)
    assert res["kld"] == 0.05091 and res["kld_se"] == 0.00181  # chunk 16's totals, not chunk 15's
    assert res["top1_agreement"] == pytest.approx(0.93012) and res["rms_dp"] == pytest.approx(0.10607)
    assert res["ln_ppl_ratio"] == 0.13174 and "kld_p99" not in res


def test_a_run_cut_before_its_last_chunk_gives_nothing():
    assert parse_kld(CHUNKS, chunks=17) is None
    assert parse_kld(CHUNKS.replace("  16 ", "  xx "), chunks=16) is None


def test_nan_columns_still_parse():
    line = "   8    46996.9999 ±  557.5210      -0.00000 ±       -nan       0.00000 ±    0.00000     0.000 ±  0.000 %" \
           "    100.000 ±  0.000 %\n"
    res = parse_kld(line, chunks=8)
    assert res["kld"] == 0.0 and res["top1_agreement"] == 1.0 and res["ln_ppl_ratio_se"] is None  # valid JSON
