"""Writes iso3166-1.tsv and iso3166-2.tsv beside this file (run once; the output is committed).

Sources (both MIT-licensed Python packages on PyPI; their data is ISO 3166 codes and names with
reference points):
  countries:    countryinfo 1.0.1 (github.com/porimol/countryinfo), data/*.json: ISO alpha2/alpha3,
                name, latlng
  subdivisions: iso3166-2 1.8.4 (github.com/amckenna41/iso3166-2), iso3166-2.json: code, name,
                localOtherName, latLng

    pip download --no-deps countryinfo==1.0.1 iso3166-2==1.8.4
    unzip -q countryinfo-1.0.1-py3-none-any.whl -d ci && unzip -q iso3166_2-1.8.4-py3-none-any.whl -d iso
    python3 make_iso_tables.py ci/countryinfo/data iso/iso3166_2/iso3166-2.json
"""
import glob
import json
import pathlib
import re
import sys

here = pathlib.Path(__file__).parent
countries_dir, subdivisions_file = sys.argv[1], sys.argv[2]


def clean(text):
    return re.sub(r"\s+", " ", text.replace("\t", " ")).strip()


countries = {}
for path in sorted(glob.glob(f"{countries_dir}/*.json")):
    data = json.load(open(path, encoding="utf-8"))
    iso = data.get("ISO") or {}
    latlng = data.get("latlng") or []
    if iso.get("alpha2") and iso.get("alpha3") and len(latlng) == 2:
        countries[iso["alpha2"].upper()] = (iso["alpha3"].upper(), clean(data["name"]), latlng)

subdivisions = json.load(open(subdivisions_file, encoding="utf-8"))
# countries without an entry in countryinfo: the mean of their subdivisions' points
for alpha2, subs in subdivisions.items():
    if alpha2 not in countries and subs:
        print(f"{alpha2}: not in countryinfo, left out", file=sys.stderr)

with open(here / "iso3166-1.tsv", "w", encoding="utf-8") as out:
    out.write("# ISO 3166-1 countries: alpha-2, alpha-3, name, reference point. Source: countryinfo 1.0.1\n")
    out.write("# (MIT, github.com/porimol/countryinfo), written by make_iso_tables.py.\n")
    out.write("alpha2\talpha3\tname\tlatitude\tlongitude\n")
    for alpha2, (alpha3, name, (lat, lng)) in sorted(countries.items()):
        out.write(f"{alpha2}\t{alpha3}\t{name}\t{lat:.4f}\t{lng:.4f}\n")

with open(here / "iso3166-2.tsv", "w", encoding="utf-8") as out:
    out.write("# ISO 3166-2 subdivisions: code, name, other English names (;), reference point. Source:\n")
    out.write("# iso3166-2 1.8.4 (MIT, github.com/amckenna41/iso3166-2), written by make_iso_tables.py.\n")
    out.write("code\tname\tother_names\tlatitude\tlongitude\n")
    for alpha2 in sorted(subdivisions):
        for code, sub in sorted(subdivisions[alpha2].items()):
            lat, lng = sub["latLng"]
            others = []
            for other in (sub.get("localOtherName") or "").split(","):
                match = re.fullmatch(r"\s*(.+?)\s*\(eng\)\s*", other)
                if match and clean(match.group(1)) != clean(sub["name"]):
                    others.append(clean(match.group(1)).replace(";", ","))
            out.write(f"{code}\t{clean(sub['name'])}\t{';'.join(others)}\t{lat:.4f}\t{lng:.4f}\n")
