"""Token sequences: text and SMILES files, RDKit's NCI molecules, and a seeded LSTM oracle (SeqGAN's benchmark).

A sequence dataset holds token ids `x` (N, L) int64. Text data ends every sequence with `<eos>` and pads after it with
`<pad>` (ids 0 and 1; L is the longest sequence plus one); the oracle's sequences have a fixed length and no special
tokens. What a model needs to turn ids back into text (the vocabulary, the tokenizer) goes into the data spec under
"tokens"; the training and held-out strings stay in `info` for the metrics (novelty is measured against them).
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..errors import UserError
from ..io import atomic_path, provenance, provenance_path, save_figure, write_json, write_png
from .base import Dataset
from .kinds import DataKind, register_kind

log = logging.getLogger("gankit")
PAD, EOS = "<pad>", "<eos>"
SPECIALS = (PAD, EOS)  # ids 0 and 1 of every text vocabulary
TOKENIZERS = ("char", "word", "smiles")
CHEM_HINT = "install the chemistry extra: pip install 'gankit[chem]' (RDKit)"
ORACLE_HIDDEN = 32  # SeqGAN's oracle: embedding and LSTM width
BAD_LINES_SHOWN = 10

# SMILES tokens: bracket atoms ([nH], [C@@H], [O-]) whole, the two-letter organic atoms Br and Cl, ring-bond numbers
# %NN, then single characters (atoms, bonds, branches, ring digits); a line is valid only when its tokens rejoin to it.
SMILES_TOKEN = re.compile(r"\[[^\[\]]+\]|Br|Cl|%\d{2}|[BCNOPSFIbcnops]|\d|[=#\-+()\\/:~@?*$.>]")


def tokenize(text: str, tokenizer: str) -> list[str] | None:
    """The tokens of one sequence; None when a SMILES string holds characters no token covers."""
    if tokenizer == "char":
        return list(text)
    if tokenizer == "word":
        return text.split()
    tokens = SMILES_TOKEN.findall(text)
    return tokens if "".join(tokens) == text else None


def detokenize(tokens: list[str], tokenizer: str) -> str:
    return " ".join(tokens) if tokenizer == "word" else "".join(tokens)


@dataclass(frozen=True)
class TextOptions:
    """What the `data.*` keys of token data say."""

    tokenizer: str | None = None  # None: by suffix (.smi: smiles, else char)
    max_len: int | None = None  # longer sequences are left out (and counted); None: the longest
    holdout: float = 0.1
    split_seed: int = 0
    skip_invalid: bool = False
    augment: int = 0  # SMILES: extra random (non-canonical) SMILES per training molecule


def text_dataset(path: str | None, options: TextOptions) -> Dataset:
    """Sequences from a `.txt` (one per line) or `.smi` file (the first field of each line; checked, canonicalised
    and deduplicated by RDKit)."""
    if not path:
        raise UserError("data.name=text needs data.path", "give data.path=FILE.txt or FILE.smi")
    file = Path(path)
    if not file.is_file():
        raise UserError(f"data.path: {file} does not exist", "give a .txt (one sequence per line) or .smi file")
    if file.suffix.lower() not in (".txt", ".smi"):
        raise UserError(f"data.path: {file} is neither .txt nor .smi", "one sequence per line, in a .txt or .smi file")
    raw = file.read_bytes()
    try:
        lines = raw.decode("utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise UserError(f"{file}: not UTF-8 text (byte {exc.start})", "save the file as UTF-8") from None
    sha = hashlib.sha256(raw).hexdigest()
    if file.suffix.lower() == ".smi":
        texts = canonical_smiles(smi_lines(lines), str(file), options.skip_invalid)
        tokenizer = options.tokenizer or "smiles"
    else:
        texts = [line for line in lines if line.strip()]
        tokenizer = options.tokenizer or "char"
    return sequence_dataset("text", texts, tokenizer, options, {"path": str(file), "sha256": sha})


def nci_dataset(options: TextOptions) -> Dataset:
    """The 4,999 NCI molecules whose SMILES ship inside the RDKit wheel (Data/NCI/first_5K.smi), canonicalised and
    deduplicated."""
    rdkit = require_rdkit("data.name=nci")
    file = Path(rdkit.__file__).parent / "Data" / "NCI" / "first_5K.smi"
    if not file.is_file():
        raise UserError(f"this RDKit has no {file.name}", "install RDKit from its wheel: pip install 'gankit[chem]'")
    # the file's 4,999 lines are the data; the few RDKit cannot parse are left out by design and counted here
    texts = canonical_smiles(smi_lines(file.read_text().splitlines()), "the NCI file", skip_invalid=True)
    return sequence_dataset("nci", texts, options.tokenizer or "smiles", options, {"path": "rdkit:Data/NCI/first_5K.smi"})


def smi_lines(lines: list[str]) -> list[tuple[int, str]]:
    """(line number, SMILES) of a .smi file's lines: the first field of each non-blank line (an id may follow)."""
    return [(i + 1, line.split()[0]) for i, line in enumerate(lines) if line.strip()]


def require_rdkit(what: str):
    """The rdkit module, or a UserError naming what needed it and how to install it."""
    try:
        import rdkit
        from rdkit import RDLogger

        RDLogger.DisableLog("rdApp.*")  # parse failures are counted and reported by gankit, not printed one by one
        return rdkit
    except ImportError:
        raise UserError(f"{what} needs RDKit, which is not installed", CHEM_HINT) from None


def canonical_smiles(numbered: list[tuple[int, str]], source: str, skip_invalid: bool) -> list[str]:
    """RDKit's canonical SMILES of each (line number, SMILES), duplicates dropped (first kept, order kept);
    unparsable lines are an error naming them, or with `skip_invalid` a warning naming them."""
    require_rdkit("SMILES data")
    from rdkit import Chem

    seen: dict[str, None] = {}
    bad = []
    for number, smiles in numbered:
        mol = Chem.MolFromSmiles(smiles)
        if mol is None:
            bad.append(number)
        else:
            seen.setdefault(Chem.MolToSmiles(mol), None)
    if bad:
        shown = ", ".join(map(str, bad[:BAD_LINES_SHOWN])) + (" ..." if len(bad) > BAD_LINES_SHOWN else "")
        if not skip_invalid:
            raise UserError(f"{source}: RDKit cannot parse {len(bad)} SMILES (lines {shown})",
                            "fix or delete those lines, or set data.skip_invalid=true to leave them out")
        log.warning("%s: left out %d SMILES RDKit cannot parse (lines %s)", source, len(bad), shown)
    return list(seen)


def sequence_dataset(name: str, texts: list[str], tokenizer: str, options: TextOptions,
                     source: dict[str, Any]) -> Dataset:
    """Texts tokenized, split (seeded) into training and held-out sequences, and encoded as ids with `<eos>`."""
    if tokenizer not in TOKENIZERS:
        raise UserError(f"data.tokenizer={tokenizer!r} is unknown", f"choose one of: {', '.join(TOKENIZERS)}")
    where = source.get("path", name)
    tokenized, bad = [], []
    for i, text in enumerate(texts):
        tokens = tokenize(text, tokenizer)
        if tokens:
            tokenized.append(tokens)
        else:
            bad.append(i + 1)
    if bad:
        raise UserError(f"{where}: {len(bad)} sequences have characters no {tokenizer} token covers, or no tokens "
                        f"(sequences {', '.join(map(str, bad[:BAD_LINES_SHOWN]))})",
                        "fix those lines, or choose another data.tokenizer")
    if options.max_len is not None:
        long = sum(len(t) > options.max_len for t in tokenized)
        if long:
            log.warning("%s: left out %d of %d sequences longer than data.max_len=%d tokens", where, long,
                        len(tokenized), options.max_len)
            tokenized = [t for t in tokenized if len(t) <= options.max_len]
    if len(tokenized) < 2:
        raise UserError(f"{where}: {len(tokenized)} usable sequences, too few to train on", "give more lines")
    order = torch.randperm(len(tokenized), generator=torch.Generator().manual_seed(options.split_seed)).tolist()
    held = round(options.holdout * len(tokenized))
    heldout = sorted(order[:held])
    train = sorted(order[held:])
    rows = [tokenized[i] for i in train]
    if options.augment:
        rows += random_smiles([detokenize(tokenized[i], tokenizer) for i in train], options, where)
    counts: dict[str, int] = {}
    for row in rows:
        for token in row:
            counts[token] = counts.get(token, 0) + 1
    vocab = [*SPECIALS, *sorted(counts, key=lambda t: (-counts[t], t))]
    index = {t: i for i, t in enumerate(vocab)}
    length = max(len(row) for row in rows) + 1  # room for <eos>
    x = torch.zeros(len(rows), length, dtype=torch.long)  # <pad> is 0
    for r, row in enumerate(rows):
        ids = [index[t] for t in row] + [index[EOS]]
        x[r, :len(ids)] = torch.tensor(ids)
    tokens = {"vocab": vocab, "tokenizer": tokenizer, "length": length, "pad": 0, "eos": 1, "sequences": len(train),
              "rows": len(rows), "heldout": len(heldout), "holdout": options.holdout, "split_seed": options.split_seed,
              "augment": options.augment, **source}
    texts = [detokenize(tokenized[i], tokenizer) for i in train]
    held_texts = [detokenize(tokenized[i], tokenizer) for i in heldout]
    return Dataset(name, "tokens", x, info={"tokens": tokens, "texts": texts, "heldout_texts": held_texts})


def random_smiles(smiles: list[str], options: TextOptions, where: str) -> list[list[str]]:
    """`options.augment` random SMILES of each molecule, tokenized (Bjerrum 2017; Arús-Pous et al. 2019): the same
    molecule written from other starting atoms and orders, so a small set teaches grammar more than strings. Atom
    orders come from numpy's PCG64 seeded by the split seed; variants longer than `max_len` are left out (counted)."""
    import numpy as np

    require_rdkit("data.augment")
    from rdkit import Chem

    rng = np.random.default_rng(options.split_seed)
    out, long = [], 0
    for text in smiles:
        mol = Chem.MolFromSmiles(text)
        if mol is None:
            raise UserError(f"data.augment: {where}: RDKit cannot parse '{text}'", "augment SMILES data only")
        for _ in range(options.augment):
            order = rng.permutation(mol.GetNumAtoms()).tolist()
            tokens = tokenize(Chem.MolToSmiles(Chem.RenumberAtoms(mol, order), canonical=False), "smiles")
            if tokens is None or (options.max_len is not None and len(tokens) > options.max_len):
                long += 1
                continue
            out.append(tokens)
    if long:
        log.warning("%s: left out %d of %d random SMILES longer than data.max_len", where, long,
                    len(smiles) * options.augment)
    return out


def decode(x: Tensor, spec: dict) -> list[str]:
    """Sequences of ids (N, L) as text: tokens up to `<eos>` (the oracle's ids, which have no vocabulary, as numbers
    separated by spaces)."""
    meta = spec["tokens"]
    vocab, eos = meta.get("vocab"), meta.get("eos")
    out = []
    for row in x.tolist():
        if eos is not None and eos in row:
            row = row[:row.index(eos)]
        if vocab is None:
            out.append(" ".join(map(str, row)))
        else:
            out.append(detokenize([vocab[i] for i in row if i >= len(SPECIALS)], meta["tokenizer"]))
    return out


# ----------------------------------------------------------------------------------------------- the oracle


def draw(logits: Tensor, u: Tensor) -> Tensor:
    """One token per row of `logits` (N, V) by inverse CDF from uniforms `u` (N,): the same u gives the same token,
    and a binary search in the cumulative weights is several times faster than torch.multinomial on wide
    vocabularies."""
    cdf = (logits.float() - logits.detach().float().amax(-1, keepdim=True)).exp_().cumsum_(-1)
    at = torch.searchsorted(cdf, (u.to(cdf) * cdf[:, -1])[:, None], right=True).squeeze(1)
    return at.clamp_(max=logits.shape[-1] - 1)


class Oracle(nn.Module):
    """SeqGAN's synthetic data source: an LSTM whose weights are all N(0, 1) from a seed; its sequences are the data
    and its log-likelihood of generated ones (NLL-oracle) says how close a generator comes. Token 0's embedding is the
    first step's input, as in SeqGAN."""

    def __init__(self, vocab: int, seed: int, hidden: int = ORACLE_HIDDEN) -> None:
        super().__init__()
        with torch.random.fork_rng(devices=[]):  # the default initialisation is overwritten: leave the global RNG be
            self.embed = nn.Embedding(vocab, hidden)
            self.lstm = nn.LSTM(hidden, hidden, batch_first=True)
            self.head = nn.Linear(hidden, vocab)
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g))

    @torch.no_grad()
    def sample(self, n: int, length: int, seed: int, batch: int = 1000) -> Tensor:
        """n sequences (n, length) drawn token by token from a seeded stream."""
        g = torch.Generator().manual_seed(seed)
        parts = []
        for start in range(0, n, batch):
            m = min(batch, n - start)
            token, state, rows = torch.zeros(m, dtype=torch.long), None, []
            for _ in range(length):
                out, state = self.lstm(self.embed(token)[:, None], state)
                token = draw(self.head(out[:, 0]), torch.rand(m, generator=g))
                rows.append(token)
            parts.append(torch.stack(rows, 1))
        return torch.cat(parts)

    @torch.no_grad()
    def nll(self, x: Tensor, batch: int = 1000) -> Tensor:
        """Per-sequence mean negative log-likelihood in nats per token (N,)."""
        out = []
        for part in x.split(batch):
            inputs = torch.cat([torch.zeros_like(part[:, :1]), part[:, :-1]], 1)
            logits = self.head(self.lstm(self.embed(inputs))[0])
            out.append(torch.nn.functional.cross_entropy(logits.transpose(1, 2), part, reduction="none").mean(1))
        return torch.cat(out)


def oracle_dataset(n: int, vocab: int, length: int, seed: int) -> Dataset:
    """n sequences of the oracle built from `seed` (the data spec names it, so metrics rebuild the same oracle)."""
    oracle = Oracle(vocab, seed)
    x = oracle.sample(n, length, seed + 1)
    tokens = {"vocab": None, "tokenizer": None, "size": vocab, "length": length, "pad": None, "eos": None,
              "sequences": n, "oracle": {"seed": seed, "vocab": vocab, "hidden": ORACLE_HIDDEN}}
    return Dataset("oracle", "tokens", x, info={"tokens": tokens})


def vocab_size(spec: dict) -> int:
    meta = spec["tokens"]
    return len(meta["vocab"]) if meta.get("vocab") is not None else meta["size"]


def build_oracle(spec: dict) -> Oracle | None:
    """The oracle a data spec names (None for other token data)."""
    found = spec.get("tokens", {}).get("oracle")
    return None if found is None else Oracle(found["vocab"], found["seed"], found["hidden"])


# ----------------------------------------------------------------------------------------------- the kind

PICTURE_LINES = 24  # sequences shown in a progress picture
MOLECULES_SHOWN = 48  # molecules drawn in a PNG of SMILES samples


@register_kind("tokens")
class TokenKind(DataKind):
    """Token sequences: text (`.txt`, one per line), SMILES (`.smi`), ids (`.npz`); pictures list the first sequences
    (molecules are drawn by RDKit when the tokens are SMILES). Text files get a provenance sidecar
    (FILE.txt.provenance.json), since a line of text has no room for it."""

    fixed_count = 1000  # enough for the progress metric (NLL-oracle, validity) to be steady; pictures show a few
    outputs = (".npz", ".txt", ".smi", ".png")
    metrics = ("nll_oracle", "sequences", "molecules")
    progress_metric = "sequences"
    usage = "gankit sample {run} -n 1000 --out samples.txt"

    def describe(self, x: Tensor, spec: dict) -> str:
        return f"{len(x)} sequences of up to {x.shape[1]} tokens"

    def sample_shape(self, spec: dict) -> str:
        return f"≤{spec['tokens']['length']}"

    def save_progress(self, path: Path, fake: Tensor, dataset: Dataset, title: str, meta: dict[str, Any]) -> None:
        save_text_picture(path, decode(fake[:PICTURE_LINES], dataset.spec()), title, meta)

    def write_other(self, fmt: str, path: Path, x: Tensor, spec: dict, *, nrow: int | None,
                    cells: list[int] | None = None, meta: dict[str, Any],
                    items: list[dict[str, Any]] | None = None) -> None:
        texts = decode(x, spec)
        if fmt == ".png":
            if spec["tokens"].get("tokenizer") == "smiles":
                save_molecule_grid(path, texts[:MOLECULES_SHOWN], nrow or 8, meta)
            else:
                save_text_picture(path, texts[:PICTURE_LINES], f"{meta.get('run', '')}: {len(x)} samples", meta)
            return
        if fmt == ".smi" and spec["tokens"].get("tokenizer") != "smiles":
            raise UserError(f"--out {path}: this model writes {spec['tokens'].get('tokenizer') or 'token id'} "
                            "sequences, not SMILES", "use FILE.txt")
        if any("\n" in t for t in texts):  # a word tokenizer never yields one; guard the one-per-line format
            raise UserError(f"--out {path}: a sequence holds a line break", "write .npz instead")
        with atomic_path(path) as tmp:
            tmp.write_text("".join(t + "\n" for t in texts), encoding="utf-8")
        write_json(provenance_path(path), provenance(**meta))


def save_text_picture(path: Path, texts: list[str], title: str, meta: dict[str, Any]) -> None:
    """Sequences as lines of monospaced text in a PNG (long ones cut), labelled as generated."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    width = 100
    shown = [t if len(t) <= width else t[:width - 1] + "…" for t in texts]
    fig = plt.figure(figsize=(10, 0.22 * (len(shown) + 2)), dpi=90)
    fig.text(0.01, 1 - 0.11 / fig.get_figheight(), title, fontsize=9, va="top", weight="bold")
    for i, line in enumerate(shown):
        fig.text(0.01, 1 - (0.22 * (i + 1.5)) / fig.get_figheight(), line or "(empty)", fontsize=8, va="top",
                 family="monospace")
    save_figure(path, fig, tight=False, **meta)


def save_molecule_grid(path: Path, smiles: list[str], per_row: int, meta: dict[str, Any]) -> None:
    """Molecules drawn by RDKit in a grid PNG, each at its own scale (an unparsable SMILES is drawn as one unknown
    atom captioned "invalid SMILES")."""
    require_rdkit("drawing molecules")
    from rdkit import Chem
    from rdkit.Chem import Draw

    mols = [Chem.MolFromSmiles(s) if s else None for s in smiles]
    captions = ["" if m is not None else "invalid SMILES" for m in mols]
    options = Draw.MolDrawOptions()
    options.drawMolsSameScale = False  # a long chain must not shrink every other molecule
    unknown = Chem.MolFromSmiles("*")  # an invalid one shows as one unknown atom, captioned
    image = Draw.MolsToGridImage([m if m is not None else unknown for m in mols], molsPerRow=per_row,
                                 subImgSize=(160, 160), legends=captions, drawOptions=options)
    write_png(path, image.convert("RGB"), provenance(**meta))
