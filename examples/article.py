# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # The Keras MNIST tutorial, with digitlab
#
# The article trains a `Flatten -> Dense(512, relu) -> Dense(10, softmax)` network on MNIST with
# rmsprop for 5 epochs at batch 128, tests it, and cross-validates it in 5 folds with learning curves
# and a box plot. This notebook walks the same steps through digitlab's Python API.
#
# MNIST is found through `DIGITLAB_DATA_DIR` (a folder holding `mnist/`), or downloaded into
# `~/.cache/digitlab` on first use. Stored as a jupytext script: `jupytext --to ipynb examples/article.py`
# makes the notebook, and `python examples/article.py` runs it as a script.

# %% tags=["parameters"]
EPOCHS = 5  # the article's training: 5 epochs at batch 128
BATCH_SIZE = 128
FOLDS = 5
CV_EPOCHS = 2  # epochs per fold: 2 keeps the notebook quick; the article uses 5 (97.6 +- 0.2 either way)
SEED = 1  # the article's KFold(random_state=1)

# %%
import numpy as np

import digitlab as dl

data = dl.load_dataset("mnist")

# %% [markdown]
# ## The data: shapes, sizes, labels

# %%
print("train:", data.x_train.shape, data.x_train.dtype, "labels", data.y_train.shape, data.y_train.dtype)
print("test: ", data.x_test.shape, data.x_test.dtype, "labels", data.y_test.shape, data.y_test.dtype)
print("pixels:", data.x_train.min(), "to", data.x_train.max())
print("labels:", np.unique(data.y_train), "first ten:", data.y_train[:10])
print("images per class (train):", np.bincount(data.y_train))

# %% [markdown]
# The first nine training images, in a 3x3 grid as the article shows them:

# %%
from digitlab.viz.samples import sample_grid_figure

sample_grid_figure(data.x_train, data.y_train, n=9)

# %% [markdown]
# ## The network, trained for 5 epochs with rmsprop
#
# `TrainConfig`'s defaults are the article's: rmsprop with Keras's defaults. The test set is passed as
# validation data, as the article does, to draw the learning curves.

# %%
model = dl.build_model("mlp")
print(dl.model_summary(model, title="mlp"))

history = dl.fit(model, data.x_train, data.y_train,
                 dl.TrainConfig.from_flat(epochs=EPOCHS, batch_size=BATCH_SIZE, optimizer="rmsprop", seed=SEED),
                 validation_data=(data.x_test, data.y_test))

# %%
scores = dl.evaluate(model, data.x_test, data.y_test)
print(f"test loss {scores['loss']:.4f}, test accuracy {scores['accuracy']:.4f}")
assert scores["accuracy"] > 0.95

# %% [markdown]
# ## 5-fold cross-validation
#
# Unlike the article, every fold trains a fresh model: the article reuses one network across the
# folds, so from the second fold on it is scored on images it has trained on. The folds are
# scikit-learn's `KFold(5, shuffle=True, random_state=1)`; each fold validates on its test fold every
# epoch, which gives the learning curves.

# %%
cv = dl.cross_validate("mlp", data.x_train, data.y_train, folds=FOLDS, seed=SEED,
                       config=dl.TrainConfig(epochs=CV_EPOCHS, batch_size=BATCH_SIZE, seed=SEED))
for fold, score in enumerate(cv.scores, start=1):
    print(f"fold {fold}: {100 * score:.3f}")
print(f"Accuracy: mean={100 * cv.mean:.3f} std={100 * cv.std:.3f}, n={len(cv.scores)}")

# %%
from digitlab.viz.curves import learning_curves_figure

learning_curves_figure([fold.history for fold in cv.folds], title="5-fold CV: train and test-fold curves")

# %%
from digitlab.viz.diagnostics import cv_boxplot_figure

cv_boxplot_figure(100 * np.asarray(cv.scores), title="fold accuracies")
