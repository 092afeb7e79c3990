"""Per-image quality profiles: measured at the transmitter, carried on the wire, planned with at both fidelities."""

import numpy as np
import pytest

from sagin_hil.codecs.base import Budget
from sagin_hil.codecs.images import load_images
from sagin_hil.codecs.metrics import psnr
from sagin_hil.codecs.profile import PROFILE_BPP_GRID, image_profiles, measure_quality_profile
from sagin_hil.codecs.registry import get_codec
from sagin_hil.datatypes import QualityProfile, Task, from_dict, to_dict


@pytest.fixture(scope="module")
def two_images():
    return load_images(n=2, size=128, split="eval")


def test_profile_is_the_codecs_own_quality(two_images):
    (_, img), (_, other) = two_images
    prof = measure_quality_profile(img, modes=("mode1",))
    codec = get_codec("jpeg2000")
    measured = []
    for bpp in PROFILE_BPP_GRID:  # at the grid points: exactly what the codec delivers (below 2048 bits, the floor)
        bits = max(int(bpp * img.shape[0] * img.shape[1]), 2048)
        measured.append(psnr(img, codec.decode(codec.encode(img, Budget(bits=bits)).data)))
    assert np.allclose(prof.psnr_db, np.maximum.accumulate(measured), atol=1e-9)
    assert measure_quality_profile(img, modes=("mode1",)) is prof  # cached by content
    other_prof = measure_quality_profile(other, modes=("mode1",))
    assert max(abs(a - b) for a, b in zip(prof.psnr_db, other_prof.psnr_db)) > 1.0, "images differ: that is the point"


def test_profile_travels_on_the_wire():
    prof = QualityProfile((0.1, 1.0, 3.0), (20.0, 30.0, 29.0), {"mode3_2": 24.5})
    assert prof.psnr_db == (20.0, 30.0, 30.0)  # made non-decreasing, like the mean curve
    task = Task(3, None, "leo0", "user1", deadline_s=4.0, quality_min_db=20.0, quality=prof)
    back = from_dict(to_dict(task))
    assert back.quality == prof
    with pytest.raises(ValueError, match="increasing bpp"):
        QualityProfile((1.0, 0.5), (20.0, 30.0))
    with pytest.raises(ValueError, match="'bpp' and 'psnr_db'"):
        QualityProfile.from_dict({"psnr_db": [1, 2]})


def test_link_adaptation_plans_with_the_images_own_curve():
    from sagin_hil.controllers.link_adaptation import LinkAdaptation
    from sagin_hil.datatypes import ControllerState, Route

    profiles = image_profiles()
    easy, hard = max(profiles.values(), key=lambda p: p.psnr_db[8]), min(profiles.values(), key=lambda p: p.psnr_db[8])
    route = Route(("leo0", "uav0", "user0"))
    state = ControllerState(time_s=0.0, tasks=[], routes={0: [route]}, modes=["mode1", "mode3_2"],
                            predicted_snr_db={h: 12.0 for h in route.links},
                            bandwidth_hz={h: 10e6 for h in route.links}, rolloff=0.25)
    la = LinkAdaptation()
    preds = {}
    for name, prof in (("easy", easy), ("hard", hard), ("mean", None)):
        task = Task(0, None, "leo0", "user0", deadline_s=0.05, quality_min_db=10.0, quality=prof)
        _, trail = la._route(task, route, state)
        preds[name] = trail["candidates"]
    mode1 = {k: v["mode1"] for k, v in preds.items()}
    assert mode1["easy"]["psnr_db"] == pytest.approx(
        float(np.interp(np.log(mode1["easy"]["bits_per_pixel"]), np.log(easy.bpp), easy.psnr_db)), abs=1e-3)
    assert mode1["easy"]["psnr_db"] > mode1["mean"]["psnr_db"] > mode1["hard"]["psnr_db"]
    assert preds["hard"]["mode3_2"]["psnr_db"] == pytest.approx(hard.mode_psnr_db["mode3_2"], abs=5e-5)  # trail: 4 decimals


def test_environment_draws_images_from_the_pool():
    from sagin_hil.controllers.abstraction import SaginWorld
    from sagin_hil.controllers.env import SaginEnv, SNR_SCALE_DB

    world = SaginWorld(4)
    world.reset([0, 1, 2, 3])
    drawn = world.image[np.isfinite(world.arrival_s)]
    assert len(set(drawn.tolist())) == len(world.image_names) >= 3, "every pool image is drawn"
    assert world.controller_state(0).tasks == [] or all(
        t.quality is not None for t in world.controller_state(0).tasks)
    env = SaginEnv()
    obs, _ = env.reset(seed=0)
    w = env.unwrapped.world
    start = 0
    for name, shape in env.unwrapped.obs_layout.items():
        size = int(np.prod(shape))
        if name == "task_image_psnr":
            field = obs[start:start + size]
            break
        start += size
    want = np.where(w.win_valid[0], w.pool_psnr_1bpp_db[w.image[0, w.win[0]]] / SNR_SCALE_DB, 0.0)
    assert np.allclose(field, want, atol=1e-6)
    mean_world = SaginWorld(1, image_profiles={})  # no pool: every task is the mean image
    assert mean_world.image_names == ["(mean image)"]


def test_the_shipped_images_profiles_are_stored_and_equal_a_fresh_measurement():
    from sagin_hil.codecs import profile as prof_mod

    (_, img), = load_images(n=1, size=256, split="run")
    stored = prof_mod._stored(prof_mod._image_key(img), PROFILE_BPP_GRID, ["mode3_2"])
    assert stored is not None, "`sagin-hil train modes` stores the shipped images' profiles"
    saved_cache, saved_store = dict(prof_mod._CACHE), prof_mod._STORED
    try:
        prof_mod._CACHE.clear()
        prof_mod._STORED = {}
        fresh = measure_quality_profile(img, modes=("mode1", "mode3_2"))
    finally:
        prof_mod._CACHE.update(saved_cache)
        prof_mod._STORED = saved_store
    assert np.allclose(fresh.psnr_db, stored.psnr_db, atol=1e-6)
    assert fresh.mode_psnr_db["mode3_2"] == pytest.approx(stored.mode_psnr_db["mode3_2"], abs=1e-6)


def test_a_jscc_profile_is_the_images_own_curve_and_averages_to_the_tables():
    """An analog mode's profile is the image's own PSNR over the table's SNR grid. Over the held-out images
    it averages to the mode table's mean curve (the same images, other noise draws: within 0.15 dB, several
    times the noise's spread on a mean over 8 images of 16k-32k symbols), and the images lie dB apart."""
    from sagin_hil.codecs.modes import load_mode_table

    profiles, table = image_profiles(), load_mode_table()
    for mode in ("jscc-1/12", "jscc-1/6"):
        row = table["modes"][mode]
        assert all(list(p.snr_db) == row["snr_db"] for p in profiles.values())
        curves = np.array([p.analog_psnr_db[mode] for p in profiles.values()])
        assert np.allclose(curves.mean(0), row["psnr_db"], atol=0.15)
        assert np.ptp(curves[:, row["snr_db"].index(5.0)]) > 3.0
    prof = next(iter(profiles.values()))
    assert prof.analog_psnr_at("jscc-1/12", 3.5) == pytest.approx(np.interp(3.5, prof.snr_db, prof.analog_psnr_db["jscc-1/12"]))
    assert prof.analog_psnr_at("mode3_2", 3.5) is None and QualityProfile.from_dict(prof.to_dict()) == prof
    with pytest.raises(ValueError, match="analog_psnr_db"):
        QualityProfile((0.1, 1.0), (20.0, 30.0), {}, (0.0, 5.0), {"jscc-1/12": (25.0,)})


def test_the_controllers_plan_jscc_with_the_images_own_curve():
    """Link adaptation and the vectorised predictor both read a task's own JSCC curve; without one, the mean."""
    from sagin_hil.codecs.modes import load_mode_table
    from sagin_hil.controllers.abstraction import Predictor
    from sagin_hil.controllers.link_adaptation import LinkAdaptation
    from sagin_hil.datatypes import ControllerState, Route

    row = load_mode_table()["modes"]["jscc-1/12"]
    grid, mean = np.array(row["snr_db"]), np.array(row["psnr_db"])
    own = QualityProfile(PROFILE_BPP_GRID, tuple(range(20, 20 + len(PROFILE_BPP_GRID))), {}, tuple(grid),
                         {"jscc-1/12": tuple(mean + 3.0)})
    route = Route(("leo0", "uav0", "user0"))
    state = ControllerState(time_s=0.0, tasks=[], routes={0: [route]}, modes=["mode1", "jscc-1/12"],
                            predicted_snr_db={h: 6.0 for h in route.links},
                            bandwidth_hz={h: 10e6 for h in route.links}, rolloff=0.25)
    la, got = LinkAdaptation(), {}
    for name, prof in (("own", own), ("mean", None)):
        task = Task(0, None, "leo0", "user0", deadline_s=1.0, quality_min_db=10.0, quality=prof)
        got[name] = la._route(task, route, state)[1]["candidates"]["jscc-1/12"]["psnr_db"]
    assert got["own"] - got["mean"] == pytest.approx(3.0, abs=1e-3)

    pr = Predictor(modes=("mode1", "jscc-1/12"))
    curves = pr.analog_curves_of([own, None])
    assert np.all(np.isnan(curves[1])) and np.all(np.isnan(curves[0, 0])) and np.allclose(curves[0, 1], mean + 3.0)
    snr = np.array([[7.0, 30.0], [7.0, 30.0]])  # the second hop strong: the end-to-end SNR is about the first's
    args = (np.ones(2, np.intp), snr, np.full((2, 2), 8e6), np.zeros((2, 2)), np.ones((2, 2), bool),
            np.full(2, 1.0), np.full(2, 10.0))
    with_own = pr.predict(*args, analog_curve_db=curves)["psnr_db"]
    without = pr.predict(*args)["psnr_db"]
    assert with_own[0] - without[0] == pytest.approx(3.0, abs=1e-9) and with_own[1] == without[1]


def test_row_wise_interpolation_is_np_interp_on_each_row():
    from sagin_hil.controllers.abstraction import _interp_rows

    rng = np.random.default_rng(0)
    grid = np.array([-4.0, -2.0, 0.0, 2.0, 5.0, 10.0, 15.0, 20.0])
    rows = np.cumsum(rng.uniform(0, 2, (5, 3, len(grid))), -1)
    x = rng.uniform(-8, 25, (5, 3))  # beyond both ends too: clamped, as np.interp
    want = np.array([[np.interp(x[i, j], grid, rows[i, j]) for j in range(3)] for i in range(5)])
    assert np.allclose(_interp_rows(x, grid, rows), want, atol=1e-12)
