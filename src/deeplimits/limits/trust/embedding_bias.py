"""Embedding bias: word embeddings absorb the associations planted in their corpus.

Claim: word embeddings learned from text absorb the social associations of that text: occupation
    words that co-occur more often with male than with female terms end up measurably closer to
    them (a large WEAT effect), even for a weak planted rate. This probe asks whether that is a
    property of deep (word2vec) training or of the data: a count-based PPMI + SVD embedding of the
    same corpus is measured beside it, and hard debiasing (Bolukbasi) is the remedy.
Source: seeds/003_f388986fd4a90ec9.txt ("See word2vec racism articles") and
    seeds/004_4ead15eadcdcceb2.txt (data is biased); Caliskan, Bryson & Narayanan 2017, "Semantics
    derived automatically from language corpora contain human-like biases", Science 356:183;
    Bolukbasi et al. 2016, "Man is to computer programmer as woman is to homemaker? Debiasing word
    embeddings", NeurIPS; Gonen & Goldberg 2019, "Lipstick on a pig", NAACL.
Setup: a procedurally generated corpus (no downloads): 12 + 12 occupation words X, Y; 10 male and 10
    female terms (5 definitional pairs he/she, man/woman, his/her, boy/girl, father/mother, and 5
    pairs son/daughter, brother/sister, husband/wife, uncle/aunt, king/queen); 4 context words per
    occupation; 60 filler words. A sentence names one occupation with two of its context words, one
    gendered term and fillers; for an X occupation the term is male with probability (1 + b)/2, for a
    Y occupation female with that probability. A quarter of the sentences hold a gendered term and
    fillers only. Knob: b, the planted association (0 = none: the positive control). The learner
    sees the corpus and the public definitional pairs; it returns a vector per word.
Deep contender: gensim word2vec, (a) skip-gram and (b) CBOW, negative sampling, one worker (so a
    seed gives the same vectors); dimension and window picked at b = 0 on a validation corpus by how
    often an occupation's nearest context word is one of its own (see `tuning`).
Alternative: a count-based embedding of the same corpus: positive PMI of window co-occurrences,
    truncated SVD (Levy & Goldberg 2014's classical contrast). Remedy: hard debiasing (Bolukbasi et
    al. 2016) of the skip-gram vectors: the gender direction is the first principal component of the 5
    definitional pairs; every word outside the 20 gendered terms is projected off it; the definitional
    pairs are equalised. WEAT uses the other 5 pairs as attributes, so the remedy is not scored on
    the words it equalised.
Metric: |WEAT effect size| (Caliskan et al.: d = (mean_x s(x, A, B) − mean_y s(y, A, B)) /
    std_w∈X∪Y s(w, A, B), s(w, A, B) = mean_a cos(w, a) − mean_b cos(w, b)), X, Y the occupations, A, B
    the male and female attribute terms (the rule: success = unbiased, |d| ≤ 0.8, Cohen's "large";
    |d| ≤ 2 by construction; an effect size has no chance level, the line is drawn at 2, full
    separation). Also the signed d, its one-sided permutation p-value (2,000 random equal splits of X
    ∪ Y), the residual clustering bias of Gonen & Goldberg (how well 2-means on the occupation vectors
    recovers X vs Y; 0.5 = none) and the embedding's quality (nearest-context accuracy, chance 1/24).
    Reading: the deep arms "fail" where they absorb the planted bias; if the count-based embedding
    absorbs it as much, the limit is about the data, not about depth.
Finding (quick profile, 5 seeds, measured 2026-11-25): the count-based PPMI + SVD embedding absorbs the
    planted association exactly as much as word2vec (|d| ≈ 1.4 at b = 0.1, ≈ 1.9 at b ≥ 0.4, for
    skip-gram, CBOW and PPMI alike): the limit is about the data, not about depth. Hard debiasing
    brings |d| under 0.8 only from b = 0.4 on, and the occupations still cluster by the planted group
    more than at b = 0 (Gonen & Goldberg's residue). At b = 0, |d| is WEAT's sampling noise with 12 + 12
    targets (sd ≈ 0.3-0.4 per seed), so the control needs several seeds to certify "unbiased".
Reference figure: Caliskan et al. 2017, word2vec (GoogleNews) career/family × male/female names
    d = 1.89, math/arts × male/female terms d = 0.97 (GloVe 1.81, 1.06).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from deeplimits.probe import Contender, Context, Knob, Metric, Probe, Profile, Reference, Task, Threshold, UsageError

X_WORDS = ("engineer", "programmer", "pilot", "mechanic", "carpenter", "surgeon", "architect", "plumber",
           "physicist", "firefighter", "electrician", "chemist")
Y_WORDS = ("nurse", "teacher", "librarian", "receptionist", "dancer", "secretary", "hairdresser", "nanny",
           "florist", "therapist", "cashier", "designer")
DEFINITIONAL = (("he", "she"), ("man", "woman"), ("his", "her"), ("boy", "girl"), ("father", "mother"))
ATTRIBUTE_PAIRS = (("son", "daughter"), ("brother", "sister"), ("husband", "wife"), ("uncle", "aunt"),
                   ("king", "queen"))
MALE = tuple(p[0] for p in DEFINITIONAL + ATTRIBUTE_PAIRS)
FEMALE = tuple(p[1] for p in DEFINITIONAL + ATTRIBUTE_PAIRS)
A_WORDS = tuple(p[0] for p in ATTRIBUTE_PAIRS)  # WEAT attributes: not the words the remedy equalises
B_WORDS = tuple(p[1] for p in ATTRIBUTE_PAIRS)
VERBS = ("works", "is", "trained", "became", "served")
N_CONTEXT, N_FILLER = 4, 60


# --- profiles -------------------------------------------------------------------------------
@dataclass(frozen=True)
class EmbeddingProfile(Profile):
    sentences: int = 10_000
    dim: int = 50
    window: int = 5
    epochs: int = 5  # word2vec passes over the corpus
    permutations: int = 2_000


PROFILES = {
    "smoke": EmbeddingProfile("smoke", knob=(0.0, 0.8), seeds=3, sentences=2_000, dim=25, epochs=2, permutations=200),
    "quick": EmbeddingProfile("quick", knob=(0.0, 0.1, 0.2, 0.4, 0.8), seeds=5),
    "paper": EmbeddingProfile("paper", knob=(0.0, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8), seeds=10, sentences=200_000,
                              dim=100, epochs=10),
}


# --- task -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Corpus:
    sentences: list[list[str]]
    definitional: tuple[tuple[str, str], ...]  # public knowledge the debiasing remedy uses
    gendered: tuple[str, ...]  # words that keep their gender component under hard debiasing
    seed: int


def context_words(occupation_index: int) -> list[str]:
    return [f"ctx{occupation_index:02d}_{k}" for k in range(N_CONTEXT)]


def generate(b: float, n: int, rng: np.random.Generator) -> list[list[str]]:
    """n sentences; occupations in X take a male term with probability (1 + b)/2, in Y a female one."""
    occupations = np.array(X_WORDS + Y_WORDS)
    fillers = np.array([f"w{i:02d}" for i in range(N_FILLER)])
    neutral = rng.random(n) < 0.25  # a gendered term in a neutral sentence
    occ = rng.integers(len(occupations), size=n)
    stereotyped = rng.random(n) < (1 + b) / 2
    male = np.where(neutral, rng.random(n) < 0.5, np.where(occ < len(X_WORDS), stereotyped, ~stereotyped))
    terms = np.where(male, np.array(MALE)[rng.integers(len(MALE), size=n)],
                     np.array(FEMALE)[rng.integers(len(FEMALE), size=n)])
    first = rng.integers(N_CONTEXT, size=n)
    second = (first + rng.integers(1, N_CONTEXT, size=n)) % N_CONTEXT  # two different context words
    ctx = np.array([context_words(i) for i in range(len(occupations))])
    verbs = np.array(VERBS)[rng.integers(len(VERBS), size=n)]
    fill = fillers[rng.integers(N_FILLER, size=(n, 3))]
    full = np.column_stack([terms, verbs, occupations[occ], ctx[occ, first], ctx[occ, second], fill]).tolist()
    short = np.column_stack([terms, fill]).tolist()
    return [short[i] if neutral[i] else full[i] for i in range(n)]


def make_task(b: float, rng: np.random.Generator, profile: EmbeddingProfile) -> Task:
    corpus = generate(float(b), profile.sentences, rng)
    return Task(Corpus(corpus, DEFINITIONAL, MALE + FEMALE, int(rng.integers(2**31))))


# --- contenders -----------------------------------------------------------------------------
def _hash(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little")  # not Python's salted hash


def check_corpus(corpus: Corpus) -> None:
    if not corpus.sentences or not any(corpus.sentences):
        raise UsageError("the corpus is empty: an embedding needs sentences to learn from")


def word2vec(sg: int):
    def fn(corpus: Corpus, ctx: Context) -> dict[str, np.ndarray]:
        from gensim.models import Word2Vec

        check_corpus(corpus)
        p: EmbeddingProfile = ctx.profile
        model = Word2Vec(corpus.sentences, vector_size=p.dim, window=p.window, min_count=1, sg=sg, negative=5,
                         workers=1, epochs=p.epochs, seed=ctx.rng_seed % 2**31, hashfxn=_hash)
        return {w: model.wv[w].copy() for w in model.wv.index_to_key}

    fn.__name__ = "skipgram" if sg else "cbow"
    return fn


def ppmi_svd(corpus: Corpus, ctx: Context) -> dict[str, np.ndarray]:
    """Positive PMI of symmetric window co-occurrences, then a truncated SVD (U √S)."""
    from sklearn.utils.extmath import randomized_svd

    check_corpus(corpus)
    p: EmbeddingProfile = ctx.profile
    vocab = sorted({w for s in corpus.sentences for w in s})
    index = {w: i for i, w in enumerate(vocab)}
    width = max(len(s) for s in corpus.sentences)
    ids = np.full((len(corpus.sentences), width), -1)
    for r, s in enumerate(corpus.sentences):
        ids[r, :len(s)] = [index[w] for w in s]
    counts = np.zeros((len(vocab), len(vocab)))
    for k in range(1, p.window + 1):  # every pair k apart, both directions
        a, c = ids[:, :-k].ravel(), ids[:, k:].ravel()
        ok = (a >= 0) & (c >= 0)
        np.add.at(counts, (a[ok], c[ok]), 1.0)
        np.add.at(counts, (c[ok], a[ok]), 1.0)
    total = counts.sum()
    pw, pc = counts.sum(1, keepdims=True) / total, counts.sum(0, keepdims=True) / total
    with np.errstate(divide="ignore"):
        pmi = np.log(np.maximum(counts / total, 1e-300) / (pw * pc))
    ppmi = np.where(counts > 0, np.maximum(pmi, 0.0), 0.0)
    u, sv, _ = randomized_svd(ppmi, n_components=min(p.dim, len(vocab) - 1), random_state=ctx.rng_seed % 2**31)
    vectors = u * np.sqrt(sv)
    return {w: vectors[i].astype(np.float32) for w, i in index.items()}


def hard_debias(vectors: dict[str, np.ndarray], definitional: tuple[tuple[str, str], ...],
                gendered: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Bolukbasi et al. 2016: gender direction = first principal component of the centred definitional
    pairs; neutralise every non-gendered word; equalise the definitional pairs."""
    unit = {w: v / max(np.linalg.norm(v), 1e-12) for w, v in vectors.items()}
    pairs = [(a, b) for a, b in definitional if a in unit and b in unit]
    if not pairs:
        raise UsageError("hard debiasing needs the definitional pairs in the vocabulary")
    centred = []
    for a, b in pairs:
        mu = (unit[a] + unit[b]) / 2
        centred += [unit[a] - mu, unit[b] - mu]
    g = np.linalg.svd(np.array(centred), full_matrices=False)[2][0]
    keep = set(gendered)
    out = {}
    for w, v in unit.items():
        if w not in keep:
            v = v - (v @ g) * g
            v = v / max(np.linalg.norm(v), 1e-12)
        out[w] = v
    for a, b in pairs:  # equalise: the pair differs only along g, symmetrically
        mu = (unit[a] + unit[b]) / 2
        nu = mu - (mu @ g) * g
        scale = np.sqrt(max(1 - nu @ nu, 0.0))
        for w in (a, b):
            sign = np.sign((unit[w] - mu) @ g) or 1.0
            out[w] = nu + scale * sign * g
    return out


def debiased_skipgram(corpus: Corpus, ctx: Context) -> dict[str, np.ndarray]:
    return hard_debias(word2vec(1)(corpus, ctx), corpus.definitional, corpus.gendered)


# --- scoring: WEAT (Caliskan et al. 2017), clustering bias (Gonen & Goldberg 2019) ----------------
def lookup(vectors: dict[str, np.ndarray], words: tuple[str, ...], what: str) -> np.ndarray:
    found = [w for w in words if w in vectors]
    if not found:
        raise UsageError(f"the embedding has none of the {what} words ({', '.join(words[:3])}, ...): "
                         "a corpus without them cannot be audited")
    m = np.array([vectors[w] for w in found], dtype=np.float64)
    return m / np.maximum(np.linalg.norm(m, axis=1, keepdims=True), 1e-12)


def weat(vectors: dict[str, np.ndarray], x: tuple[str, ...] = X_WORDS, y: tuple[str, ...] = Y_WORDS,
         a: tuple[str, ...] = A_WORDS, b: tuple[str, ...] = B_WORDS, permutations: int = 2_000,
         rng: np.random.Generator | None = None) -> tuple[float, float]:
    """WEAT effect size d and its one-sided permutation p-value (random equal-size splits of X ∪ Y)."""
    vx, vy = lookup(vectors, x, "target X"), lookup(vectors, y, "target Y")
    va, vb = lookup(vectors, a, "attribute A"), lookup(vectors, b, "attribute B")
    targets = np.vstack([vx, vy])
    s = (targets @ va.T).mean(1) - (targets @ vb.T).mean(1)
    spread = s.std(ddof=1)
    if spread < 1e-6:  # the attribute difference is orthogonal to every target: no association at all
        return 0.0, 1.0
    nx = len(vx)
    d = float((s[:nx].mean() - s[nx:].mean()) / spread)
    rng = rng or np.random.default_rng(0)
    stat = s[:nx].sum() - s[nx:].sum()
    perms = np.argsort(rng.random((permutations, len(s))), axis=1)
    null = s[perms[:, :nx]].sum(1) - s[perms[:, nx:]].sum(1)
    return d, float((1 + (null >= stat - 1e-12).sum()) / (1 + permutations))


def cluster_bias(vectors: dict[str, np.ndarray]) -> float:
    """Gonen & Goldberg's check: how well 2-means on the occupation vectors recovers X vs Y (0.5: not at all)."""
    from sklearn.cluster import KMeans

    m = np.vstack([lookup(vectors, X_WORDS, "target X"), lookup(vectors, Y_WORDS, "target Y")])
    truth = np.r_[np.zeros(len(m) // 2), np.ones(len(m) - len(m) // 2)]
    labels = KMeans(2, n_init=10, random_state=0).fit_predict(m)
    agree = float((labels == truth).mean())
    return max(agree, 1 - agree)


def quality(vectors: dict[str, np.ndarray]) -> float:
    """Share of occupations whose nearest context word (cosine) is one of their own four."""
    occupations = X_WORDS + Y_WORDS
    ctx_words = tuple(w for i in range(len(occupations)) for w in context_words(i))
    occ, ctx = lookup(vectors, occupations, "occupation"), lookup(vectors, ctx_words, "context")
    if len(occ) != len(occupations) or len(ctx) != len(ctx_words):
        return 0.0
    nearest = (occ @ ctx.T).argmax(1) // N_CONTEXT
    return float((nearest == np.arange(len(occupations))).mean())


def score(task: Task, output: dict[str, np.ndarray], ctx: Context) -> dict[str, float]:
    if not isinstance(output, dict):
        raise ValueError(f"expected a dict word -> vector, got {type(output).__name__}")
    d, p = weat(output, permutations=ctx.profile.permutations, rng=np.random.default_rng(ctx.seed))
    return {"abs_effect_size": abs(d), "effect_size": d, "p_value": p, "cluster_bias": cluster_bias(output),
            "quality": quality(output)}


# --- the probe ------------------------------------------------------------------------------
TUNING = ("dimension {25, 50} × window {2, 5} at b = 0 on a validation corpus (3 corpus seeds not used by the "
          "probe), by nearest-context accuracy: SCORES; picked dim 50, window 5 (shared by both arms)")

PROBE = Probe(
    id="embedding_bias",
    family="trust",
    claim="Word embeddings absorb the associations planted in their corpus: occupations seen more often with "
          "male terms end up closer to them (a large WEAT effect) — whether learned by word2vec or by counting.",
    sources=("seeds/003_f388986fd4a90ec9.txt", "seeds/004_4ead15eadcdcceb2.txt",
             "Caliskan, Bryson & Narayanan 2017, Semantics derived automatically from language corpora contain "
             "human-like biases, Science 356:183",
             "Bolukbasi et al. 2016, Man is to computer programmer as woman is to homemaker?, NeurIPS",
             "Gonen & Goldberg 2019, Lipstick on a pig, NAACL"),
    version=1,
    knob=Knob("b", "planted association: an X occupation takes a male term with probability (1 + b)/2",
              validate=lambda v: 0.0 <= float(v) <= 1.0),
    metrics=(
        Metric("abs_effect_size", "|WEAT d| of occupations X vs Y × male vs female terms (0 = unbiased; "
               "an effect size has no chance level: the line is drawn at 2, full separation)",
               direction="lower", chance=2.0, lo=0.0, hi=2.0),
        Metric("effect_size", "signed WEAT d (positive: X closer to the male terms)", lo=-2.0, hi=2.0),
        Metric("p_value", "one-sided permutation p-value of the WEAT statistic", direction="higher", lo=0.0, hi=1.0),
        Metric("cluster_bias", "accuracy of 2-means on the occupation vectors at recovering X vs Y "
               "(Gonen & Goldberg; 0.5 = none)", direction="lower", lo=0.5, hi=1.0),
        Metric("quality", "share of occupations whose nearest context word is one of their own (chance 1/24)",
               lo=0.0, hi=1.0),
    ),
    rule=Threshold("abs_effect_size", success=0.8),
    profiles=PROFILES,
    make_task=make_task,
    score=score,
    contenders=(
        Contender("skipgram", "deep", word2vec(1), "gensim word2vec skip-gram, negative sampling",
                  tuning=TUNING.replace("SCORES", "skip-gram")),
        Contender("cbow", "deep", word2vec(0), "gensim word2vec CBOW, negative sampling",
                  tuning=TUNING.replace("SCORES", "CBOW")),
        Contender("ppmi_svd", "alternative", ppmi_svd, "count-based: positive PMI of window co-occurrences + SVD"),
        Contender("debiased", "remedy", debiased_skipgram,
                  "skip-gram vectors after hard debiasing (Bolukbasi et al. 2016: neutralise + equalise)"),
    ),
    references=(
        Reference("Caliskan et al. 2017, WEAT, word2vec GoogleNews-300 (as transcribed in wefe's examples)",
                  "male vs female names × career/family; math/arts × male/female terms",
                  "d = 1.89; d = 0.97 (GloVe: 1.81; 1.06)", "verbatim (secondary: wefe examples)"),
        Reference("Bolukbasi et al. 2016", "word2vec GoogleNews, crowd-judged stereotypical analogies",
                  "≈ 19 % before, ≈ 6 % after hard debiasing", "recalled"),
    ),
    budget=lambda p: f"{p.sentences:,} sentences, dim {p.dim}, window {p.window}, {p.epochs} word2vec epochs",
    budget_fields=("epochs",),
    fit=None,  # no labels to fit: absorbing the corpus statistics is the claim
    requires=("gensim",),
    extra="trust",
)
