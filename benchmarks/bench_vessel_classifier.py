"""Learned vessel classifier (monitor.detect.vessel_classifier) on sen2ships, honestly.

Run: ``python benchmarks/bench_vessel_classifier.py [--shipped]``.

Prints, on the real Sentinel-2 port scenes of ../shared/data/sen2ships
(skipped with a message when absent; ``$SEN2SHIPS`` overrides the place):

- candidate recall: labelled vessels matched by at least one candidate;
- leave-one-scene-out figures: per scene, a model trained on the other 8
  scenes (threshold chosen inside those 8) scores the held-out scene;
  precision, recall, F1 overall and per scene, median |count error|; and
  how well the calibrated scores of the kept held-out detections (Platt,
  fitted inside the training folds) predict their matches: sum of scores
  vs true positives, Brier score, matched share per score bin.
  Needs scikit-learn (training only); skipped with a message without it.
- with ``--shipped``: the bundled model on all 9 scenes (trained on them:
  an in-sample figure, printed for reference only, not a test result).

Matching: one-to-one, IoU >= 0.1 or centroid within 20 m (the data set's README).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
sys.path.insert(0, str(ROOT))

import train_vessel_classifier as tvc  # noqa: E402


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not (tvc.DATA / "scenes").is_dir():
        print(f"bench_vessel_classifier: skipped ({tvc.DATA} not found)")
        return 0
    t0 = time.perf_counter()
    scenes = tvc.prepare(verbose=False)
    t1 = time.perf_counter()
    hit, n, c = tvc.candidate_recall(scenes)
    print(f"sen2ships candidate recall {hit}/{n} = {hit / max(n, 1):.3f} ({c} candidates, "
          f"candidates+features {t1 - t0:.1f} s for {len(scenes)} scenes)")
    try:
        import sklearn  # noqa: F401
    except ImportError:
        print("LOSO: skipped (scikit-learn is needed for training: pip install scikit-learn)")
    else:
        res = tvc.loso(scenes)
        tvc.print_summary(res)
    if "--shipped" in argv:
        from monitor.detect import vessel_classifier as vc

        m = vc.load_model()
        tp = fp = fn = 0
        for s in scenes:
            a, b, e = s.score(m.predict_proba(s.X), m.threshold)
            tp, fp, fn = tp + a, fp + b, fn + e
        print(f"shipped model on its own training scenes (in-sample, reference only): tp={tp} fp={fp} fn={fn} "
              f"F1={2 * tp / max(2 * tp + fp + fn, 1):.3f} threshold {m.threshold:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
