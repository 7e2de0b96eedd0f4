import numpy as np, os, mlflow, sys
from pathlib import Path
from tests.stages.test_pretrained import write_collection, write_series, family
from tests.conftest import temporary_store
from pipeline.stages import pretrain, main
folder = Path("/tmp/dbgstore"); import shutil; shutil.rmtree(folder, ignore_errors=True); folder.mkdir()
noise=float(sys.argv[1])
corpus = write_collection(folder / "family.csv", family(300, 120, seed=1, noise=noise))
with temporary_store(folder) as uri:
    pretrain.run(**{**pretrain.params.defaults("pretrain"), "corpus": str(corpus), "epochs": 15})
    for length, seed in ((36, 99), (48, 98), (60, 97)):
        short = write_series(folder / f"short{length}{seed}.csv", family(1, length, seed=seed, noise=noise)[0])
        common = {"data_source": str(short), "column": "y", "time_column": "month", "season": 12, "horizon": 1}
        _, z = main.run(**common, init="pretrained", fine_tune_epochs=0, quiet=True)
        _, l = main.run(**common, init="none", quiet=True)
        print("RESULT", length, seed, z["test_rmse"], l["test_rmse"], z["persistence_test_rmse"], z.get("seasonal_naive_test_rmse"), z["ets_test_rmse"], file=sys.stderr)
