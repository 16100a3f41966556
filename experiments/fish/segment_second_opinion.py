"""Would the fish segmentation network (``models/fish-segmentation``) split the classical
detector's boxes that lie over two fish, as a second opinion on suspicious boxes (issue 28,
fifth round)? On one development draw of the open-set stream rendered as whole frames: each
classical detection is ``two`` (IoU >= 0.5 with two drawn fish), ``one`` (IoU >= 0.5 with
one, under 0.1 with any other) or ``other``; the network "splits" it when it finds two or
more fish mostly inside its box (each at least half inside and a fifth of its area).

    python experiments/fish/segment_second_opinion.py 7100420 1200

Measured (development seed 7,100,420, 1,200 sightings, 547 frames): ``two`` split 1 of 14,
``one`` 1 of 899, ``other`` 33 of 278; 19.5 ms CPU a frame for the network (loaded VM).
The boxes behind the mixed ids (two fish overlapping at IoU 0.6-0.9) are the ones it does
not split, so it was not adopted.
"""

import json
import sys
import time
from pathlib import Path

from seawatch.models.fish.frame_detect import detect_fish
from seawatch.models.fish.frame_segment import FishSegmenter
from seawatch.models.fish.occlusion import covered
from seawatch.models.fish.open_set_frames import open_set_frames
from seawatch.models.fish.open_set_stream import open_set_stream
from seawatch.models.fish.tank_scene import iou

seed = int(sys.argv[1])
n = int(sys.argv[2])
stream = open_set_stream(seed, sightings=n)
frames = open_set_frames(stream, seed)
seg = FishSegmenter(Path("models/fish-segmentation"))
stats = {}
t_seg = 0.0
for f in frames:
    dets = detect_fish(f.image)
    if not dets:
        continue
    t0 = time.process_time()
    sd = seg(f.image)
    t_seg += time.process_time() - t0
    for d in dets:
        ov = sorted((iou(g.box, d.box) for g in f.fish), reverse=True)
        two = len(ov) > 1 and ov[1] >= 0.5
        one = len(ov) > 0 and ov[0] >= 0.5 and (len(ov) < 2 or ov[1] < 0.1)
        kind = "two" if two else "one" if one else "other"
        inside = [
            s
            for s in sd
            if covered(s.box, d.box) >= 0.5 and s.box[2] * s.box[3] >= 0.2 * d.box[2] * d.box[3]
        ]
        k = stats.setdefault(kind, [0, 0])
        k[0] += 1
        k[1] += len(inside) >= 2
print(
    json.dumps(
        {
            "seed": seed,
            "frames": len(frames),
            "split_by_segmenter": stats,
            "seg_ms_per_frame": round(t_seg / len(frames) * 1e3, 1),
        }
    )
)
