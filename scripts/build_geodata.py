"""Build geodata/: the founding scenario (Nagorno-Karabakh, November 2020 - September 2023).

Every source coordinate sits in the plain tables below, each cited to docs/scenario-sources.md
(which names the public source of each one). Every derived geometry - the
5 km Lachin corridor, the districts handed over, the line of contact - is computed here, so that

    .venv/bin/python scripts/build_geodata.py [--out DIR] [--natural-earth DIR]

writes the same bytes on every run. See geodata/README.md for what each feature is and how far
to trust it: approximations for demonstration and tests, never for operations.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from pyproj import CRS, Transformer
from shapely.geometry import LineString, Point, Polygon, mapping, shape
from shapely.geometry.base import BaseGeometry

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO_ROOT / "geodata"
DEFAULT_NATURAL_EARTH = REPO_ROOT / "geodata" / "sources" / "natural-earth"
NATURAL_EARTH_FILE = "ne_10m_admin_0_disputed_areas.geojson"
NATURAL_EARTH_NAME = "Nagorno-Karabakh"  # the BRK_NAME of the 1994-2020 extent

DECIMALS = 6  # 1e-6 degree is about 0.1 m: far below every error stated in the README
CORRIDOR_HALF_WIDTH_M = 2500.0  # the statement, point 6: "the Lachin corridor, 5 km wide"
BUFFER_QUAD_SEGS = 16  # arcs of the buffer stay within 5 m of the true 2.5 km circle
# Each zone's `boundary_uncertainty_m`: how far its drawn line may be from the agreed one, as
# the sources give it (geodata/README.md, "Boundary accuracy", says why each value).
NATURAL_EARTH_ERROR_M = 3000.0  # 1:10m generalisation, "1-3 km"
ZONE_LINE_NEAR_PARUKH_ERROR_M = 2000.0  # "+-2 km near Stepanakert/Shusha and Parukh/Askeran"
DISTRICT_ERROR_M = 10_000.0  # the hand-drawn boundaries between districts, "+-10 km"
CORRIDOR_ERROR_M = 2000.0  # centre lines 1-2 km; the cut edge at Stepanakert +-2 km
WGS84 = CRS.from_epsg(4326)

LatLon = tuple[float, float]  # the sources write (lat, lon); the tables keep that order
Feature = dict[str, Any]

# --- Times (RFC 3339 with offset; local time in the region is UTC+4) -------------------------
# The trilateral statement, point 1: in force from 10 Nov 2020, 00:00 Moscow time.
CEASEFIRE_2020 = "2020-11-10T00:00:00+03:00"
# docs/scenario-sources.md, "Dates". Hand-overs are taken at local midnight: the hour is not public.
AGHDAM_HANDOVER = "2020-11-20T00:00:00+04:00"
KALBAJAR_HANDOVER = "2020-11-25T00:00:00+04:00"
LACHIN_HANDOVER = "2020-12-01T00:00:00+04:00"
HIN_TAGHER_DROPPED = "2020-12-14T00:00:00+04:00"
CORRIDOR_ROUTE_1_END = "2022-08-26T00:00:00+04:00"
CORRIDOR_ROUTE_2_START = "2022-08-30T00:00:00+04:00"
# The zone ran "Nov 2020 - Sep 2023"; it ends with the ceasefire of 20 Sep 2023, 13:00,
# after which the local forces disarmed and there was no line left to keep.
ZONE_END = "2023-09-20T13:00:00+04:00"
# The pre-2020 line is valid from the Bishkek ceasefire (12 May 1994).
BISHKEK_CEASEFIRE = "1994-05-12T00:00:00+04:00"
PARUKH_POST_OPENED = "2022-03-28T00:00:00+04:00"

STATEMENT = "Trilateral statement of 9/10 November 2020"

# --- Parties ----------------------------------------------------------------------------------
# Colours: the Okabe-Ito palette, told apart also with colour-vision deficiencies; none is a
# flag colour on purpose.
PARTIES: list[dict[str, Any]] = [
    {
        "code": "AZE",
        "name": "Azerbaijan Armed Forces",
        "color": "#0072B2",
        "aliases": [
            "Azerbaijan",
            "Azerbaijani forces",
            "Armed Forces of Azerbaijan",
            "Military Forces of Azerbaijan*",
            "Police Forces of Azerbaijan*",
        ],
    },
    {
        "code": "ARM",
        "name": "Armenian Armed Forces",
        "color": "#D55E00",
        "aliases": [
            "Armenia",
            "Armenian forces",
            "Armed Forces of Armenia",
            "Military Forces of Armenia*",
            "Police Forces of Armenia*",
        ],
    },
    {
        "code": "NK",
        "name": "Artsakh Defence Army",
        "color": "#E69F00",
        "aliases": [
            "Artsakh",
            "Artsakh Defence Army",
            "Nagorno-Karabakh Defence Army",
            "Military Forces of Artsakh*",
            "Military Forces of Nagorno-Karabakh*",
        ],
    },
    {
        "code": "RU-PK",
        "name": "Russian peacekeeping contingent",
        "color": "#009E73",
        "aliases": [
            "Russian peacekeepers",
            "Russian peacekeeping contingent",
            "Russian peacekeeping forces",
            "Military Forces of Russia*Peacekeeping*",
        ],
    },
    {
        "code": "TR",
        "name": "Turkish Armed Forces (joint Russian-Turkish monitoring centre)",
        "color": "#CC79A7",
        "aliases": [
            "Turkey",
            "Turkish Armed Forces",
            "Joint Russian-Turkish Monitoring Centre",
            "Military Forces of Turkey*",
        ],
    },
]

# --- Places: docs/scenario-sources.md, "Places" -------------------------------------------------
# (Armenian-side name, Azerbaijani name, lat, lon, note). Each name sits under its own language
# (Ivanyan and Karvachar are Armenian-side names, Khojaly and Kalbajar Azerbaijani).
# Where a source gives one name, the other side's usual name is added only when well attested
# (Akna, Asgaran, Farrukh heights); otherwise both columns carry the same name.
PLACES: list[tuple[str, str, float, float, str]] = [
    ("Stepanakert", "Khankendi", 39.8153, 46.7519, "peacekeepers' HQ"),
    ("Shushi", "Shusha", 39.7583, 46.7483, "Azerbaijani from 8 Nov 2020"),
    ("Askeran", "Asgaran", 39.9367, 46.8328, ""),
    ("Khramort", "Pirlar", 40.0053, 46.8172, "evacuated 24 Mar 2022"),
    (
        "Parukh",
        "Farrukh",
        40.0194,
        46.8011,
        "entered 24 Mar 2022; also spelled Farukh; Furukh in the Russian MoD statement",
    ),
    (
        "Karaglukh heights",
        "Farrukh heights",
        40.005,
        46.797,
        "estimate, +-1.5 km",
    ),
    ("Ivanyan", "Khojaly", 39.9111, 46.7892, "peacekeepers' base"),
    ("Stepanakert airport", "Khojaly airport", 39.9014, 46.7869, "next to the base"),
    ("Martuni", "Khojavend", 39.7953, 47.1131, "observation post No. 13"),
    ("Martakert", "Aghdara", 40.2153, 46.8128, ""),
    ("Hadrut", "Hadrut", 39.5167, 47.0300, "Azerbaijani from Oct 2020"),
    ("Akna", "Aghdam", 39.9931, 46.9306, "handed over 20 Nov 2020"),
    ("Talish", "Talish", 40.3814, 46.7408, "Azerbaijani from Oct 2020"),
    ("Mataghis", "Sugovushan", 40.327, 46.750, "one village; Azerbaijani from 3 Oct 2020"),
    ("Karvachar", "Kalbajar", 40.1067, 46.0383, "handed over 25 Nov 2020"),
    ("Berdzor", "Lachin", 39.6408, 46.5469, "in the corridor until 26 Aug 2022"),
    ("Aghavno", "Zabukh", 39.5897, 46.5433, "corridor post"),
    ("Kornidzor", "Kornidzor", 39.5481, 46.5311, "Armenia; Armenian end of the corridor"),
    ("Goris", "Goris", 39.511, 46.339, "Armenia"),
    (
        "Hakari bridge",
        "Hakari bridge",
        39.55,
        46.56,
        "estimate, +-1.5 km; Azerbaijani checkpoint from 23 Apr 2023",
    ),
    ("Lisagor", "Turshsu", 39.6875, 46.6431, "corridor post"),
    ("Mets Shen", "Boyuk Galadarasi", 39.6583, 46.6019, "on the second corridor route"),
    ("Sarsang reservoir", "Sarsang reservoir", 40.1814, 46.6171, "inside the zone"),
    ("Nor Maragha", "Qizil Kengerli", 40.0992, 46.8811, "handed over with Aghdam district"),
    (
        "Hin Tagher",
        "Kohne Taglar",
        39.5075,
        46.8236,
        "dropped from the peacekeepers' map 14 Dec 2020",
    ),
    ("Mkhitarishen", "Mukhtar", 39.7614, 46.7744, "on the line, contested"),
    ("Shosh", "Shushakend", 39.7700, 46.7847, "inside, just east of Shusha"),
]

# --- Zone of responsibility: docs/scenario-sources.md, "The zone of responsibility" -------------
# The 23-vertex approximation, clockwise from the north-west, typical error 3-8 km.
ZONE_OF_RESPONSIBILITY: list[LatLon] = [
    (40.31, 46.42), (40.30, 46.58), (40.30, 46.68), (40.29, 46.75), (40.27, 46.82),
    (40.22, 46.88), (40.11, 46.865), (40.03, 46.84), (39.94, 46.87), (39.88, 46.97),
    (39.86, 47.10), (39.80, 47.21), (39.74, 47.15), (39.71, 47.00), (39.73, 46.90),
    (39.75, 46.80), (39.755, 46.775), (39.78, 46.755), (39.79, 46.64), (39.88, 46.55),
    (40.00, 46.45), (40.10, 46.36), (40.20, 46.33),
]  # fmt: skip
# Until 14 Dec 2020 the zone also held a salient south to Hin Tagher (39.5075, 46.8236) and
# Khtsaberd ("dropped from the peacekeepers' map 14 Dec 2020"). No outline is public:
# this one is drawn by hand about 6 km wide around both villages, error about 5 km. It is inserted
# into the clockwise ring after SALIENT_AFTER and rejoins it on the next edge, at (39.745, 46.825).
SALIENT_AFTER: LatLon = (39.73, 46.90)
HIN_TAGHER_SALIENT: list[LatLon] = [
    (39.62, 46.88), (39.52, 46.865), (39.49, 46.84), (39.495, 46.805), (39.53, 46.795),
    (39.62, 46.815), (39.745, 46.825),
]  # fmt: skip
# The line of contact is the part of the ring that faced the Azerbaijani forces: from the
# north-west corner clockwise (north, east, south) to the Shusha side. The western edge faced
# Kalbajar and Lachin districts, held by the Armenian side until they were handed over.
LINE_OF_CONTACT_END: LatLon = (39.78, 46.755)

# --- Lachin corridor: docs/scenario-sources.md, "The Lachin corridor" ----------------------------
CORRIDOR_ROUTE_1: list[LatLon] = [
    (39.800, 46.745),  # Stepanakert
    (39.775, 46.725),
    (39.752, 46.705),
    (39.720, 46.670),
    (39.688, 46.643),  # Lisagor
    (39.665, 46.595),
    (39.641, 46.547),  # Berdzor
    (39.590, 46.543),  # Aghavno
    (39.563, 46.540),  # border (approximate)
    (39.5481, 46.5311),  # Kornidzor
]
CORRIDOR_ROUTE_2: list[LatLon] = [
    *CORRIDOR_ROUTE_1[:5],  # "the same as far as Lisagor"
    (39.658, 46.602),  # Mets Shen
    (39.60, 46.58),  # approximate
    (39.55, 46.56),  # Hakari bridge (approximate)
    (39.5481, 46.5311),  # Kornidzor
]

# --- Districts handed over: docs/scenario-sources.md, "The districts handed over" --------------
# Coarse hand-drawn outlines, error +-10 km. They are deliberately generous: the build keeps only
# what lies inside the 1994-2020 line (Natural Earth) and outside the zone of responsibility, so
# the outer edges follow Natural Earth and the inner edge follows the zone exactly.
# The boundary between Kalbajar and Lachin districts is taken along lat 39.86.
DISTRICT_OUTLINES: dict[str, list[LatLon]] = {
    "aghdam": [(40.17, 46.75), (40.17, 47.25), (39.87, 47.25), (39.87, 46.80)],
    "kalbajar": [(40.50, 45.50), (40.50, 46.45), (39.86, 46.60), (39.86, 45.50)],
    "lachin": [
        (39.86, 45.50), (39.86, 46.60), (39.79, 46.66), (39.70, 46.69), (39.55, 46.70),
        (39.42, 46.66), (39.42, 45.50),
    ],
}  # fmt: skip

# --- Observation posts: docs/scenario-sources.md, "Observation posts" (all illustrative) -------
# (id, name, lat, lon, valid_from, valid_to, note). No post has public coordinates: for Zarysly,
# Dadivank and Janyatag: those are the village or monastery coordinates of their Wikipedia pages.
# Ids name both names of a place in alphabetical order, as place ids do.
OBSERVATION_POSTS: list[tuple[str, str, float, float, str, str | None, str]] = [
    (
        "op-hq-khankendi-stepanakert",
        "Peacekeepers' headquarters, Stepanakert / Khankendi",
        39.8153,
        46.7519,
        CEASEFIRE_2020,
        None,
        "command post deployed by 15 Nov 2020; town centre coordinates",
    ),
    (
        "op-base-ivanyan-khojaly",
        "Peacekeepers' base, Ivanyan / Khojaly",
        39.9111,
        46.7892,
        CEASEFIRE_2020,
        None,
        "main base, next to the airport (39.9014, 46.7869); village coordinates",
    ),
    (
        "op-13-khojavend-martuni",
        "Observation post No. 13, Martuni / Khojavend",
        39.7953,
        47.1131,
        CEASEFIRE_2020,
        None,
        "the number is public, the exact site is not; town coordinates",
    ),
    (
        "op-aghavno-zabukh",
        "Corridor post, Aghavno / Zabukh",
        39.5897,
        46.5433,
        CEASEFIRE_2020,
        CORRIDOR_ROUTE_1_END,
        "temporary corridor post from 10 Nov 2020; the village left the corridor on 26 Aug 2022",
    ),
    (
        "op-lisagor-turshsu",
        "Corridor post, Lisagor / Turshsu",
        39.6875,
        46.6431,
        CEASEFIRE_2020,
        None,
        "temporary corridor post from 10 Nov 2020 ('Lysogorsky'); on both corridor routes",
    ),
    (
        "op-zarysly",
        "Corridor post, Zarysly",
        39.7172,
        46.6761,
        CEASEFIRE_2020,
        None,
        "temporary corridor post from 10 Nov 2020; coordinates from Wikipedia",
    ),
    (
        "op-dadivank",
        "Dadivank monastery",
        40.1614,
        46.2880,
        KALBAJAR_HANDOVER,
        None,
        "guarded after Kalbajar district was handed over; coordinates from Wikipedia",
    ),
    (
        "op-farrukh-parukh",
        "Observation post, Parukh / Farrukh",
        40.0194,
        46.8011,
        PARUKH_POST_OPENED,
        None,
        "set up after the March 2022 incident; village coordinates",
    ),
    (
        "op-chankatagh-janyatag",
        "Observation post near Chankatagh / Janyatag",
        40.1386,
        46.7692,
        CEASEFIRE_2020,
        None,
        "'near Janyatag': village coordinates from Wikipedia, the post itself within ~2 km",
    ),
]

# --- Reports, 24-28 March 2022 (docs/scenario-sources.md; wording from the statements) --------
# One feature per claim and per source, never merged. No source gave coordinates: each point is
# placed by us from the words of the claim (see `placement`), and its uncertainty says how far.
# An id is <date of the statement>-<source>-<n>; `observed_at` is the time the claim is about.
# The "parukh-group" track: outside (before the crossing), inside (24-26 Mar), outside per the
# Russian MoD (27 Mar), inside per the Armenian side (28 Mar).
PARUKH_GROUP = "parukh-group"
REPORTS: list[dict[str, Any]] = [
    {
        "id": "2022-03-24-arm-side-1",
        "party": "AZE",
        "observed_at": "2022-03-24T06:00:00+04:00",
        "at": (40.024, 46.870),
        "uncertainty_m": 1000,
        "kind": "troops",
        "unit": PARUKH_GROUP,
        "source": "Armenian side",
        "confidence": "low",
        "notes": "Azerbaijani units crossed the line of contact towards Parukh; "
        "this is where they started from.",
        "placement": "initial position east of the line, about 2 km outside the zone and 6 km "
        "east of Parukh; reconstructed, so that a return to the initial positions "
        "can be measured",
    },
    {
        "id": "2022-03-24-arm-side-2",
        "party": "AZE",
        "observed_at": "2022-03-24T18:00:00+04:00",
        "at": (40.012, 46.808),
        "uncertainty_m": 1000,
        "kind": "troops",
        "unit": PARUKH_GROUP,
        "source": "Armenian side",
        "confidence": "medium",
        "notes": "Azerbaijani units entered towards Parukh and hold positions about 1 km from "
        "the village; Khramort evacuated.",
        "placement": "1 km south-east of Parukh, between the village and the line",
    },
    {
        "id": "2022-03-25-arm-side-1",
        "party": "AZE",
        "observed_at": "2022-03-25T10:00:00+04:00",
        "at": (40.005, 46.797),
        "uncertainty_m": 1500,
        "kind": "troops",
        "unit": PARUKH_GROUP,
        "source": "Armenian side",
        "confidence": "medium",
        "notes": "Fighting for the Karaglukh heights; Azerbaijani units hold positions there.",
        "placement": "Karaglukh heights estimate (+-1.5 km)",
    },
    {
        "id": "2022-03-25-arm-side-2",
        "party": "AZE",
        "observed_at": "2022-03-25T12:00:00+04:00",
        "at": (40.010, 46.790),
        "uncertainty_m": 2000,
        "kind": "drone",
        "unit": None,
        "source": "Armenian side",
        "confidence": "medium",
        "notes": "Bayraktar TB2 drone strikes on Karabakh positions near Parukh; "
        "3 soldiers killed, about 14 wounded.",
        "placement": "Karabakh positions west of the Karaglukh heights; no site given",
    },
    {
        "id": "2022-03-26-ru-mod-1",
        "party": "AZE",
        "observed_at": "2022-03-26T18:00:00+04:00",
        "at": (40.013, 46.803),
        "uncertainty_m": 1000,
        "kind": "troops",
        "unit": PARUKH_GROUP,
        "source": "Russian MoD",
        "confidence": "medium",
        "notes": "From 24 to 25 Mar the Azerbaijani armed forces entered the zone of "
        "responsibility; the contingent is working to return them to their starting "
        "positions and has asked Azerbaijan to withdraw.",
        "placement": "near Parukh ('Furukh'), where the statement places the events",
    },
    {
        "id": "2022-03-26-ru-mod-2",
        "party": "AZE",
        "observed_at": "2022-03-25T18:00:00+04:00",
        "at": (40.006, 46.800),
        "uncertainty_m": 1500,
        "kind": "fortification",
        "unit": PARUKH_GROUP,
        "source": "Russian MoD",
        "confidence": "medium",
        "notes": "Azerbaijani forces set up an observation post inside the zone (24-25 Mar).",
        "placement": "no site given; put on the Karaglukh heights above Parukh",
    },
    {
        "id": "2022-03-26-ru-mod-3",
        "party": "AZE",
        "observed_at": "2022-03-25T12:00:00+04:00",
        "at": (40.018, 46.797),
        "uncertainty_m": 2000,
        "kind": "strike",
        "unit": None,
        "source": "Russian MoD",
        "confidence": "medium",
        "notes": "Four strikes by Bayraktar TB2 drones on Karabakh armed formations in the area "
        "of Furukh (24-25 Mar, no time given).",
        "placement": "'in the area of' the village: at Parukh, 2 km uncertainty",
    },
    {
        "id": "2022-03-26-az-mod-1",
        "party": "NK",
        "observed_at": "2022-03-26T07:00:00+04:00",
        "at": (40.008, 46.792),
        "uncertainty_m": 2000,
        "kind": "troops",
        "unit": None,
        "source": "Azerbaijani MoD",
        "confidence": "low",
        "notes": "'Illegal Armenian armed detachments' attempted sabotage against Azerbaijani "
        "army units in the morning and were forced to retreat; positions 'being "
        "clarified on the spot'; calls the Russian statement one-sided.",
        "placement": "no site given; put just west of the Karaglukh heights, where the "
        "Armenian side reported the fighting",
    },
    {
        "id": "2022-03-27-ru-mod-1",
        "party": "AZE",
        "observed_at": "2022-03-27T12:00:00+04:00",
        "at": (40.020, 46.866),
        "uncertainty_m": 1000,
        "kind": "troops",
        "unit": PARUKH_GROUP,
        "source": "Russian MoD",
        "confidence": "medium",
        "notes": "The Azerbaijani units left the Farukh area as a result of negotiations.",
        "placement": "no site given; put back near the initial position east of the line, "
        "about 0.6 km from the report 2022-03-24-arm-side-1",
    },
    {
        "id": "2022-03-27-ru-mod-2",
        "party": "AZE",
        "observed_at": "2022-03-27T10:00:00+04:00",
        "at": (40.010, 46.830),
        "uncertainty_m": 5000,
        "kind": "other",
        "unit": None,
        "source": "Russian MoD",
        "confidence": "medium",
        "notes": "The ceasefire was violated twice by the Azerbaijani armed forces in Askeran "
        "district (shooting); two people injured on each side.",
        "placement": "only the district is named: 1.5 km inside the line east of Khramort, "
        "5 km uncertainty",
    },
    {
        "id": "2022-03-27-az-mod-1",
        "party": "AZE",
        "observed_at": "2022-03-27T20:00:00+04:00",
        "at": (40.012, 46.799),
        "uncertainty_m": 1500,
        "kind": "troops",
        "unit": None,
        "source": "Azerbaijani MoD",
        "confidence": "medium",
        "notes": "No change in the positions of the Azerbaijani army in Farrukh village and on "
        "the surrounding heights; denies a withdrawal, the ceasefire violation and any "
        "injured servicemen.",
        "placement": "between the village and the Karaglukh heights; kept out of the "
        "parukh-group track, which holds the positions placed by the other sides",
    },
    {
        "id": "2022-03-28-arm-side-1",
        "party": "AZE",
        "observed_at": "2022-03-28T12:00:00+04:00",
        "at": (40.005, 46.797),
        "uncertainty_m": 1500,
        "kind": "troops",
        "unit": PARUKH_GROUP,
        "source": "Armenian side",
        "confidence": "low",
        "notes": "Azerbaijani troops still on one slope of Karaglukh.",
        "placement": "Karaglukh heights estimate (+-1.5 km)",
    },
    {
        "id": "2022-03-28-arm-side-2",
        "party": "RU-PK",
        "observed_at": "2022-03-28T12:00:00+04:00",
        "at": (40.0194, 46.8011),
        "uncertainty_m": 500,
        "kind": "troops",
        "unit": None,
        "source": "Armenian side",
        "confidence": "medium",
        "notes": "Parukh is under the control of the Russian peacekeepers, who set up an "
        "observation post in the village.",
        "placement": "village coordinates",
    },
]


# --- Geometry ---------------------------------------------------------------------------------


def lonlat(points: Iterable[LatLon]) -> list[tuple[float, float]]:
    """Swap the tables' (lat, lon) into the (lon, lat) order of GeoJSON and shapely."""
    return [(lon, lat) for lat, lon in points]


def polygon(points: Sequence[LatLon]) -> Polygon:
    """A polygon from a (lat, lon) ring in either winding order (finish() orients it)."""
    return Polygon(lonlat(points))


def zone_of_responsibility_ring(with_salient: bool) -> list[LatLon]:
    """The clockwise ring of the zone, with or without the Hin Tagher salient."""
    ring = list(ZONE_OF_RESPONSIBILITY)
    if with_salient:
        at = ring.index(SALIENT_AFTER) + 1
        ring[at:at] = HIN_TAGHER_SALIENT
    return ring


def _apply(transformer: Transformer) -> Callable[[np.ndarray], np.ndarray]:
    def run(xy: np.ndarray) -> np.ndarray:
        x, y = transformer.transform(xy[:, 0], xy[:, 1])
        return np.column_stack([x, y])

    return run


def metric_buffer(line: LineString, distance_m: float) -> BaseGeometry:
    """Buffer a lon/lat line by `distance_m` metres on the ground.

    Degrees are not metres (here 1 degree of longitude is ~85 km, of latitude ~111 km), so the
    line goes to an azimuthal equidistant projection centred on itself, is buffered there and
    comes back. Over the ~30 km of a route the projection's scale error stays below 1e-5, and
    the buffer's edges are at most a few km long, over which a straight line in the projection
    and one in lon/lat differ by centimetres.
    """
    centre = line.centroid
    local = CRS.from_proj4(
        f"+proj=aeqd +lat_0={centre.y:.6f} +lon_0={centre.x:.6f} +datum=WGS84 +units=m +no_defs"
    )
    to_local = Transformer.from_crs(WGS84, local, always_xy=True)
    to_wgs84 = Transformer.from_crs(local, WGS84, always_xy=True)
    buffered = shapely.transform(line, _apply(to_local)).buffer(
        distance_m, quad_segs=BUFFER_QUAD_SEGS
    )
    return shapely.transform(buffered, _apply(to_wgs84))


def finish(geom: BaseGeometry) -> BaseGeometry:
    """Round to DECIMALS, orient as RFC 7946 asks (exterior CCW, holes CW), refuse invalid."""
    rounded = shapely.transform(geom, lambda xy: np.round(xy, DECIMALS))
    oriented = shapely.orient_polygons(shapely.remove_repeated_points(rounded))
    if not shapely.is_valid(oriented):
        raise ValueError(f"invalid geometry after rounding: {shapely.is_valid_reason(oriented)}")
    return oriented


def read_natural_earth_karabakh(natural_earth_dir: Path) -> BaseGeometry:
    """Natural Earth's 1994-2020 extent of Nagorno-Karabakh, as a shapely geometry."""
    collection = json.loads((natural_earth_dir / NATURAL_EARTH_FILE).read_text(encoding="utf-8"))
    for feature in collection["features"]:
        if feature["properties"].get("BRK_NAME") == NATURAL_EARTH_NAME:
            return shape(feature["geometry"])
    raise LookupError(f"no feature with BRK_NAME {NATURAL_EARTH_NAME!r} in {natural_earth_dir}")


# --- Features ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ZoneVersion:
    """One version of a zone, as it goes into zones.geojson."""

    id: str
    version: int
    name: str
    kind: str
    authorized_parties: tuple[str, ...]
    valid_from: str
    valid_to: str | None
    agreement: str
    source: str
    geometry: BaseGeometry
    #: How far the drawn line may be from the agreed one (geodata/README.md says why each).
    boundary_uncertainty_m: float
    warning_distance_m: float = 1000.0

    def feature(self) -> Feature:
        """The GeoJSON Feature; properties in a fixed order for stable, readable files."""
        return {
            "type": "Feature",
            "id": self.id,
            "geometry": mapping(finish(self.geometry)),
            "properties": {
                "name": self.name,
                "kind": self.kind,
                "authorized_parties": list(self.authorized_parties),
                "valid_from": self.valid_from,
                "valid_to": self.valid_to,
                "version": self.version,
                "warning_distance_m": self.warning_distance_m,
                "boundary_uncertainty_m": self.boundary_uncertainty_m,
                "agreement": self.agreement,
                "source": self.source,
            },
        }


def build_zones(natural_earth_dir: Path) -> list[Feature]:
    """Every zone version of the scenario, oldest zone first."""
    zor_v1 = polygon(zone_of_responsibility_ring(with_salient=True))
    zor_v2 = polygon(zone_of_responsibility_ring(with_salient=False))
    karabakh_1994 = read_natural_earth_karabakh(natural_earth_dir)

    def corridor(route: Sequence[LatLon]) -> BaseGeometry:
        # Where the buffer reaches into the zone of responsibility (the Stepanakert end) the
        # zone's rules apply: otherwise the corridor, which authorizes only the peacekeepers,
        # would flag the zone's own forces in Stepanakert. The Hin Tagher salient is far away,
        # so v2 stands for both versions.
        return metric_buffer(LineString(lonlat(route)), CORRIDOR_HALF_WIDTH_M).difference(zor_v2)

    def district(name: str) -> BaseGeometry:
        # Armenian-held part = inside the 1994-2020 line, outside the zone (v1: in force then).
        return polygon(DISTRICT_OUTLINES[name]).intersection(karabakh_1994).difference(zor_v1)

    zor = {
        "id": "nk-pk-zone",
        "name": "Zone of responsibility of the Russian peacekeeping contingent",
        "kind": "peacekeeping",
        "authorized_parties": ("RU-PK", "NK"),
        "agreement": f"{STATEMENT}, points 1, 3 and 4",
    }
    lachin = {
        "id": "nk-lachin-corridor",
        "name": "Lachin corridor",
        "kind": "corridor",
        "authorized_parties": ("RU-PK",),
    }
    handover = {"kind": "control", "authorized_parties": ("ARM", "NK")}
    district_source = (
        "hand-drawn outline (error +-10 km) cut to the 1994-2020 line of Natural Earth 1:10m "
        "(a few km) and to the zone of responsibility v1 (its own error, 3-8 km)"
    )
    zones = [
        ZoneVersion(
            id="nk-1994-line",
            version=1,
            name="Armenian-held area, 1994-2020 (Natural Earth 'Nagorno-Karabakh')",
            kind="control",
            authorized_parties=("ARM", "NK"),
            valid_from=BISHKEK_CEASEFIRE,
            valid_to=CEASEFIRE_2020,
            agreement="Bishkek Protocol of 5 May 1994; ceasefire of 12 May 1994",
            source="Natural Earth 1:10m admin-0 breakaway and disputed areas, BRK_NAME "
            "'Nagorno-Karabakh' (public domain, edition c. 2014); generalised, typical "
            "error 1-3 km",
            geometry=karabakh_1994,
            boundary_uncertainty_m=NATURAL_EARTH_ERROR_M,
        ),
        ZoneVersion(
            **zor,
            version=1,
            valid_from=CEASEFIRE_2020,
            valid_to=HIN_TAGHER_DROPPED,
            source="approximation of docs/scenario-sources.md (23 vertices, typical error 3-8 km, "
            "+-2 km "
            "near Stepanakert/Shusha and Parukh/Askeran) plus a hand-drawn salient around "
            "Hin Tagher and Khtsaberd (error about 5 km)",
            geometry=zor_v1,
            boundary_uncertainty_m=ZONE_LINE_NEAR_PARUKH_ERROR_M,
        ),
        ZoneVersion(
            **zor,
            version=2,
            valid_from=HIN_TAGHER_DROPPED,
            valid_to=ZONE_END,
            source="approximation of docs/scenario-sources.md (23 vertices, typical error 3-8 km, "
            "+-2 km "
            "near Stepanakert/Shusha and Parukh/Askeran), about 2,500 km2",
            geometry=zor_v2,
            boundary_uncertainty_m=ZONE_LINE_NEAR_PARUKH_ERROR_M,
        ),
        ZoneVersion(
            **handover,
            id="nk-handover-aghdam",
            version=1,
            name="Aghdam district, Armenian-held part until the hand-over",
            valid_from=CEASEFIRE_2020,
            valid_to=AGHDAM_HANDOVER,
            agreement=f"{STATEMENT}, point 2",
            source=district_source,
            geometry=district("aghdam"),
            boundary_uncertainty_m=DISTRICT_ERROR_M,
        ),
        ZoneVersion(
            **handover,
            id="nk-handover-kalbajar",
            version=1,
            name="Kalbajar district, Armenian-held part until the hand-over",
            valid_from=CEASEFIRE_2020,
            valid_to=KALBAJAR_HANDOVER,
            agreement=f"{STATEMENT}, point 6",
            source=district_source,
            geometry=district("kalbajar"),
            boundary_uncertainty_m=DISTRICT_ERROR_M,
        ),
        ZoneVersion(
            **handover,
            id="nk-handover-lachin",
            version=1,
            name="Lachin district, Armenian-held part until the hand-over",
            valid_from=CEASEFIRE_2020,
            valid_to=LACHIN_HANDOVER,
            agreement=f"{STATEMENT}, point 6",
            source=district_source,
            geometry=district("lachin"),
            boundary_uncertainty_m=DISTRICT_ERROR_M,
        ),
        ZoneVersion(
            **lachin,
            version=1,
            valid_from=LACHIN_HANDOVER,
            valid_to=CORRIDOR_ROUTE_1_END,
            agreement=f"{STATEMENT}, point 6",
            source="route 1 of docs/scenario-sources.md (centre line good to about 1 km) buffered "
            "2.5 km each "
            "side in metres, minus the zone of responsibility",
            geometry=corridor(CORRIDOR_ROUTE_1),
            boundary_uncertainty_m=CORRIDOR_ERROR_M,
        ),
        ZoneVersion(
            **lachin,
            version=2,
            valid_from=CORRIDOR_ROUTE_2_START,
            valid_to=ZONE_END,
            agreement=f"{STATEMENT}, point 6 (new route, opened 30 Aug 2022)",
            source="route 2 of docs/scenario-sources.md (centre line good to about 2 km) buffered "
            "2.5 km each "
            "side in metres, minus the zone of responsibility",
            geometry=corridor(CORRIDOR_ROUTE_2),
            boundary_uncertainty_m=CORRIDOR_ERROR_M,
        ),
    ]
    return [zone.feature() for zone in zones]


def point_feature(feature_id: str, at: LatLon, properties: dict[str, Any]) -> Feature:
    """A Point Feature at a (lat, lon) pair."""
    lat, lon = at
    return {
        "type": "Feature",
        "id": feature_id,
        "geometry": mapping(finish(Point(lon, lat))),
        "properties": properties,
    }


def slug(text: str) -> str:
    """Lower-case ASCII words joined by hyphens."""
    return "-".join("".join(c if c.isalnum() else " " for c in text.lower()).split())


def place_id(name_hy: str, name_az: str) -> str:
    """A neutral id: both names in alphabetical order, so that neither side's comes first."""
    names = sorted({slug(name_hy), slug(name_az)})
    return "place-" + "-".join(names)


def build_places() -> list[Feature]:
    """Every place of the PLACES table, with both names."""
    return [
        point_feature(
            place_id(name_hy, name_az),
            (lat, lon),
            {
                "id": place_id(name_hy, name_az),
                "name_hy": name_hy,
                "name_az": name_az,
                "note": note,
            },
        )
        for name_hy, name_az, lat, lon, note in PLACES
    ]


def build_observation_posts() -> list[Feature]:
    """The known sites of peacekeepers' posts, all illustrative."""
    return [
        point_feature(
            post_id,
            (lat, lon),
            {
                "id": post_id,
                "name": name,
                "illustrative": True,
                "valid_from": valid_from,
                "valid_to": valid_to,
                "note": note,
            },
        )
        for post_id, name, lat, lon, valid_from, valid_to, note in OBSERVATION_POSTS
    ]


def build_line_of_contact() -> list[Feature]:
    """The edge of the zone that faced the Azerbaijani forces, before and after 14 Dec 2020."""
    features = []
    for with_salient, valid_from, valid_to in (
        (True, CEASEFIRE_2020, HIN_TAGHER_DROPPED),
        (False, HIN_TAGHER_DROPPED, ZONE_END),
    ):
        ring = zone_of_responsibility_ring(with_salient)
        line = LineString(lonlat(ring[: ring.index(LINE_OF_CONTACT_END) + 1]))
        features.append(
            {
                "type": "Feature",
                "id": f"line-of-contact-{valid_from[:10]}",
                "geometry": mapping(finish(line)),
                "properties": {
                    "name": "Line of contact"
                    + (" (with the Hin Tagher salient)" if with_salient else ""),
                    "source": "north, east and south edge of the zone of responsibility "
                    f"v{1 if with_salient else 2}, typical error 3-8 km; in the "
                    "Aghdam sector the line of 10-20 Nov 2020 ran further east, see README",
                    "valid_from": valid_from,
                    "valid_to": valid_to,
                },
            }
        )
    return features


def build_reports() -> list[Feature]:
    """The claims of 24-28 March 2022, one feature per claim and per source."""
    features = []
    for report in REPORTS:
        properties = {k: v for k, v in report.items() if k not in ("id", "at")}
        features.append(point_feature(report["id"], report["at"], properties))
    return features


# --- Output -----------------------------------------------------------------------------------


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def write_feature_collection(path: Path, features: Sequence[Feature]) -> None:
    """One feature a line: valid GeoJSON whose diffs show which feature changed."""
    body = ",\n".join(_json(feature) for feature in features)
    path.write_text(
        '{"type": "FeatureCollection", "features": [\n' + body + "\n]}\n",
        encoding="utf-8",
        newline="\n",
    )


def write_parties(path: Path) -> None:
    """parties.json: a JSON list, one party a line."""
    body = ",\n".join(_json(party) for party in PARTIES)
    path.write_text("[\n" + body + "\n]\n", encoding="utf-8", newline="\n")


def build(out_dir: Path, natural_earth_dir: Path) -> list[Path]:
    """Write every generated file into `out_dir`; return their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    collections = {
        "zones.geojson": build_zones(natural_earth_dir),
        "line_of_contact.geojson": build_line_of_contact(),
        "observation_posts.geojson": build_observation_posts(),
        "places.geojson": build_places(),
        "reports.geojson": build_reports(),
    }
    written = []
    for name, features in collections.items():
        write_feature_collection(out_dir / name, features)
        written.append(out_dir / name)
    write_parties(out_dir / "parties.json")
    written.append(out_dir / "parties.json")
    return written


def main(argv: Sequence[str] | None = None) -> None:
    """Command line: build into --out from the Natural Earth layer in --natural-earth."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output directory")
    parser.add_argument(
        "--natural-earth",
        type=Path,
        default=DEFAULT_NATURAL_EARTH,
        help=f"directory holding {NATURAL_EARTH_FILE} (default: geodata/sources/natural-earth)",
    )
    args = parser.parse_args(argv)
    for path in build(args.out, args.natural_earth):
        print(path)


if __name__ == "__main__":
    main()
