"""The metric registry: every metric name a user can ask for and the protocol it stands for.

Names and protocols as NVlabs stylegan2-ada-pytorch `metrics/metric_main.py` (fid50k_full, kid50k_full,
pr50k3_full, is50k, ppl_zfull, ppl_wfull, ppl_zend, ppl_wend, and the legacy fid50k, kid50k, pr50k3 that use
50,000 reals), plus the package's weight-free metrics. `--num N` gives the same protocol with N generated images
under a name that says so (fid5k_full, ppl5k_zfull): never the official name for a smaller count.
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

# What each kind of metric needs at least, in generated images (the estimator's own minimum).
MIN_NUM = {"fid": 2, "kid": 2, "pr": 4, "is": 10, "ppl": 2, "swd": 1, "modes": 1, "glyph_acc": 36}
FOLDER_KINDS = ("fid", "kid", "pr", "is")  # metrics of two image folders (all images of each)


@dataclass(frozen=True)
class Protocol:
    """One metric's protocol: what it measures with which feature network on how many images."""

    name: str                       # the name reported (the official one only at the official count)
    kind: str                       # fid, kid, pr, is, ppl, swd, modes, glyph_acc
    num_gen: Optional[int]          # generated images (PPL: samples); None = all images of a folder
    max_real: Optional[int] = None  # reals used: the first max_real of the dataset; None = all
    detector: Optional[str] = None  # 'inception', 'vgg16' or None (weight-free)
    exact_reals: bool = False       # legacy fid50k/kid50k/pr50k3: max_real reals exactly, not "up to"
    needs_reals: bool = True        # False for IS, PPL, modes and glyph_acc
    space: str = ""                 # PPL: 'z' or 'w'
    sampling: str = ""              # PPL: 'full' or 'end'
    registry_name: str = ""         # the registry entry it was made from ('' for folder comparisons)

    @property
    def official(self) -> bool:
        """True when this is the registry's protocol unchanged (the published count)."""
        return bool(self.registry_name) and PROTOCOLS[self.registry_name] == self


def _count_name(n: int) -> str:
    return f"{n // 1000}k" if n % 1000 == 0 and n >= 1000 else str(n)


def _registry() -> Dict[str, Protocol]:
    entries = [
        Protocol("fid50k_full", "fid", 50000, None, "inception"),
        Protocol("kid50k_full", "kid", 50000, 1000000, "inception"),
        Protocol("pr50k3_full", "pr", 50000, 200000, "vgg16"),
        Protocol("is50k", "is", 50000, None, "inception", needs_reals=False),
        Protocol("fid50k", "fid", 50000, 50000, "inception", exact_reals=True),
        Protocol("kid50k", "kid", 50000, 50000, "inception", exact_reals=True),
        Protocol("pr50k3", "pr", 50000, 50000, "vgg16", exact_reals=True),
        Protocol("swd", "swd", 16384, 16384),
        Protocol("modes", "modes", 26000, needs_reals=False),
        Protocol("glyph_acc", "glyph_acc", 3600, needs_reals=False),
    ]
    for space in ("z", "w"):
        for sampling in ("full", "end"):
            entries.append(Protocol(f"ppl_{space}{sampling}", "ppl", 50000, None, "vgg16", needs_reals=False,
                                    space=space, sampling=sampling))
    return {p.name: dataclasses.replace(p, registry_name=p.name) for p in entries}


PROTOCOLS: Dict[str, Protocol] = _registry()
KINDS_WITH_OWN_COUNT = ("swd", "glyph_acc")  # no published count: the name stays, num_gen records the count


def scaled(protocol: Protocol, num: int) -> Protocol:
    """The protocol with `num` generated images, renamed unless num is the official count (fid50k_full at
    num=5000 -> fid5k_full; ppl_zfull -> ppl5k_zfull; the legacy 50k-reals protocols scale their reals with it).
    ValueError below the estimator's minimum."""
    if isinstance(num, bool) or not isinstance(num, int) or num < MIN_NUM[protocol.kind]:
        raise ValueError(f"--num {num} is too small for {protocol.name}: expected an int >= "
                         f"{MIN_NUM[protocol.kind]} (generated images the estimator needs)")
    if num == protocol.num_gen:
        return protocol
    if protocol.kind in KINDS_WITH_OWN_COUNT:
        name = protocol.name
    elif "50k" in protocol.name:
        name = protocol.name.replace("50k", _count_name(num), 1)
    elif protocol.kind == "ppl":
        name = f"ppl{_count_name(num)}_{protocol.space}{protocol.sampling}"
    else:
        name = f"{protocol.name}{_count_name(num)}"
    max_real = num if protocol.exact_reals or protocol.kind == "swd" else protocol.max_real
    return dataclasses.replace(protocol, name=name, num_gen=num, max_real=max_real)


def folder_protocol(kind: str) -> Protocol:
    """FID/KID/PR/IS of two folders: all images of each."""
    detector = "vgg16" if kind == "pr" else "inception"
    return Protocol(kind, kind, None, None, detector, needs_reals=kind != "is")


def parse_metric_names(text: str, folders: bool = False) -> List[str]:
    """Metric names of a comma-separated list, deduplicated in order; ValueError listing the valid names."""
    names = [t.strip().lower() for t in str(text).split(",")]
    valid: Tuple[str, ...] = FOLDER_KINDS if folders else tuple(PROTOCOLS)
    if not names or any(not n for n in names):
        raise ValueError(f"{text!r}: expected a comma-separated list of metric names, e.g. {valid[0]}")
    unknown = [n for n in names if n not in valid]
    if unknown:
        hint = "" if folders else " (comparing two image folders: fid, kid, pr, is)"
        raise ValueError(f"unknown metric(s) {', '.join(unknown)}; valid: {', '.join(valid)}{hint}")
    return list(dict.fromkeys(names))


def protocol_for(name: str, num: Optional[int] = None) -> Protocol:
    """The Protocol of an official or package metric name, scaled to `num` generated images when given."""
    if name not in PROTOCOLS:
        raise ValueError(f"unknown metric {name!r}; valid: {', '.join(PROTOCOLS)}")
    return PROTOCOLS[name] if num is None else scaled(PROTOCOLS[name], num)


# Result keys of the metrics above (official names, scaled names and their suffixes): what `stylegan plot` draws
# by default besides the losses.
_RESULT_KEY = re.compile(r"^(?:(?:fid|kid|pr|is)\d+k?\d*(?:_full)?(?:_precision|_recall|_mean|_std)?"
                         r"|ppl\d*k?_[zw](?:full|end)|modes\d*k?(?:_kl)?|glyph_acc|fid|kid|pr_precision|pr_recall"
                         r"|is_mean|is_std)$")


def is_metric_key(key: str) -> bool:
    """True for a metric result key such as fid50k_full, fid5k_full, pr50k3_full_precision, ppl_wend, glyph_acc."""
    return bool(_RESULT_KEY.match(key))
