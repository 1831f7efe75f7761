"""The distillation loss against a direct numpy computation: the KL term's value and gradient,
and one whole training step (label term, soft term, unlabelled images, class weights)."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from resnet_ft.training.step import SoftLoss, distillation_term, train_step


def np_softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


RNG = np.random.default_rng(7)
LOGITS = RNG.normal(0, 3, (6, 5))
TEACHER_LOGITS = RNG.normal(0, 3, (6, 5))


@pytest.mark.parametrize("temperature", [1.0, 2.5, 4.0, 10.0])
def test_kl_term_value_and_gradient_match_numpy(temperature):
    teacher = np_softmax(TEACHER_LOGITS / temperature)
    student = np_softmax(LOGITS / temperature)
    expected = temperature**2 * np.sum(teacher * (np.log(teacher) - np.log(student)), axis=1)
    # d/dz of T^2 KL(t || softmax(z/T)) = T (softmax(z/T) - t): Hinton et al.'s gradient
    expected_grad = temperature * (student - teacher)

    logits = tf.Variable(LOGITS, dtype=tf.float32)
    with tf.GradientTape() as tape:
        value = distillation_term(teacher.astype(np.float32), logits, temperature)
        total = tf.reduce_sum(value)
    grad = tape.gradient(total, logits).numpy()
    np.testing.assert_allclose(value.numpy(), expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(grad, expected_grad, rtol=1e-3, atol=1e-5)


def test_kl_term_is_zero_when_the_student_matches_the_teacher():
    teacher = np_softmax(LOGITS / 3.0).astype(np.float32)
    value = distillation_term(teacher, tf.constant(LOGITS, tf.float32), 3.0)
    np.testing.assert_allclose(value.numpy(), 0.0, atol=1e-5)


def test_kl_term_treats_zero_teacher_probabilities_as_contributing_nothing():
    teacher = np.array([[1.0, 0.0, 0.0]], np.float32)
    logits = np.array([[2.0, 0.5, -1.0]])
    student = np_softmax(logits)
    value = distillation_term(teacher, tf.constant(logits, tf.float32), 1.0).numpy()
    np.testing.assert_allclose(value, [-np.log(student[0, 0])], rtol=1e-5)


def _linear_model(kernel: np.ndarray):
    import keras

    model = keras.Sequential([keras.Input((kernel.shape[0],)),
                              keras.layers.Dense(kernel.shape[1],
                                                 use_bias=False)])
    model.layers[0].set_weights([kernel])
    return model


def test_one_step_applies_alpha_temperature_masks_and_class_weights(execution):
    """Loss and SGD update of a softmax regression, computed by hand in numpy."""
    import keras

    alpha, temperature = 0.3, 2.0
    x = RNG.normal(0, 1, (4, 3))
    kernel = RNG.normal(0, 0.5, (3, 5))
    y = np.array([2, 0, -1, 4])  # the third image is unlabelled
    weights = np.array([1.0, 1.0, 2.0, 1.0, 0.5], np.float32)
    teacher = np_softmax(RNG.normal(0, 2, (4, 5)) / temperature)

    z = x @ kernel
    p, s_t = np_softmax(z), np_softmax(z / temperature)
    known = y >= 0
    label = np.where(known, y, 0)
    onehot = np.eye(5)[label]
    ce = -np.log(p[np.arange(4), label]) * weights[label] * known
    kl = temperature**2 * np.sum(teacher * (np.log(teacher) - np.log(s_t)), axis=1)
    expected_total = np.sum(alpha * ce + (1 - alpha) * kl)
    # gradient of the batch mean w.r.t. z: label term (p - onehot), soft term T (s_T - t)
    dz = (alpha * (weights[label] * known)[:, None] * (p - onehot)
          + (1 - alpha) * temperature * (s_t - teacher)) / len(y)
    expected_kernel = kernel - 0.1 * x.T @ dz

    model = _linear_model(kernel.astype(np.float32))
    optimizer = keras.optimizers.SGD(0.1)
    step = train_step(model, optimizer, weights, 0.0, tf.distribute.get_strategy(),
                      SoftLoss(alpha, temperature))
    total, correct = step(x.astype(np.float32), y, teacher.astype(np.float32))
    np.testing.assert_allclose(float(total), expected_total, rtol=1e-5)
    assert float(correct) == np.sum((p.argmax(1) == y) & known)
    np.testing.assert_allclose(model.layers[0].get_weights()[0], expected_kernel, rtol=1e-4,
                               atol=1e-6)


def test_label_only_step_applies_smoothing_and_class_weights(execution):
    """``train``'s step without a teacher: Keras' label smoothing times the class weight,
    summed and divided by the batch size, then one SGD update, all by hand in numpy."""
    import keras

    smoothing, classes = 0.2, 5
    x = RNG.normal(0, 1, (6, 3))
    kernel = RNG.normal(0, 0.5, (3, classes))
    y = np.array([0, 1, 4, 4, 2, 3])
    weights = np.array([2.0, 1.0, 0.5, 1.0, 3.0], np.float32)

    p = np_softmax(x @ kernel)
    target = np.eye(classes)[y] * (1 - smoothing) + smoothing / classes
    losses = -np.sum(target * np.log(p), axis=1) * weights[y]
    dz = weights[y][:, None] * (p - target) / len(y)  # d(mean loss)/dz for softmax + CE

    model = _linear_model(kernel.astype(np.float32))
    step = train_step(model, keras.optimizers.SGD(0.1), weights, smoothing,
                      tf.distribute.get_strategy())
    total, correct = step(x.astype(np.float32), y)
    np.testing.assert_allclose(float(total), losses.sum(), rtol=1e-5)
    assert float(correct) == np.sum(p.argmax(1) == y)
    np.testing.assert_allclose(model.layers[0].get_weights()[0], kernel - 0.1 * x.T @ dz,
                               rtol=1e-4, atol=1e-6)


def test_a_step_without_a_soft_loss_refuses_teacher_probabilities():
    import keras

    model = _linear_model(np.zeros((3, 2), np.float32))
    step = train_step(model, keras.optimizers.SGD(0.1), np.ones(2, np.float32), 0.0,
                      tf.distribute.get_strategy())
    with pytest.raises(ValueError, match="SoftLoss"):
        step(np.zeros((1, 3), np.float32), np.array([0]), np.ones((1, 2), np.float32) / 2)
