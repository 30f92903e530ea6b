"""`jaxfer play`: a finished run's greedy agent (any agent, recurrent ones included) plays N games."""
import pytest
from PIL import Image

from jaxfer import cli

TINY = ["total_steps=400", "epoch_steps=200", "learning_starts=100", "buffer_size=500", "seeds=2", "eval_envs=2",
        "eval_steps=12", "--no-progress"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("play")
    done = {}
    for name, extra in {"dqn": [], "a2c_lstm": ["agent=a2c", "network=minatar_ac", "core=lstm"]}.items():
        assert cli.main(["train", *TINY, *extra, "--out", str(root / name)]) == 0
        done[name] = root / name
    return done


@pytest.mark.parametrize("name", ["dqn", "a2c_lstm"])
@pytest.mark.cli
def test_a_finished_run_plays_games_and_writes_a_gif(runs, name, capsys, tmp_path):
    gif = tmp_path / "game.gif"
    capsys.readouterr()
    assert cli.main(["play", str(runs[name]), "--episodes", "6", "--gif", str(gif), "--seed-index", "1"]) == 0
    line = capsys.readouterr().out.strip()
    assert "plays catch/v0: mean score" in line and "over 6 games" in line, line
    with Image.open(gif) as im:  # one Catch game: the ball falls 9-10 rows
        assert 8 <= im.n_frames <= 12


@pytest.mark.parametrize("args, needle", [(["minatar/Breakout"], "cannot play minatar/Breakout"),
                                          (["--episodes", "0"], "--episodes must be >= 1"),
                                          (["--seed-index", "2"], "holds 2 seeds")])
@pytest.mark.cli
def test_play_mistakes_are_one_line(runs, args, needle, capsys):
    assert cli.main(["play", str(runs["dqn"]), *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0], err
