"""Flow-matching samplers, time_convention "tau1_noise": tau = 1 is noise, tau = 0 is data;
integrate dY/dtau = v from tau = 1 to tau = 0. Every velocity is multiplied by the action mask
m = (row < H_e) & (col < K_e), and so is the initial noise, so masked entries stay exactly 0.

Time grids (n = 0..N, tau_0 = 1, tau_N = 0), computed in float64:
  uniform: tau_n = 1 - n/N
  cosine:  tau_n = (1 + cos(pi*n/N)) / 2
  shift:   u = 1 - n/N; tau_n = s*u / (1 + (s-1)*u)      (s = action_expert.time_shift, default 3)
Solvers, with dt_n = tau_{n+1} - tau_n (< 0) and v(Y, tau) the masked velocity:
  euler:    Y += dt*v(Y, tau_n)                                             N evaluations
  heun:     v1 = v(Y, tau_n); if n < N-1: v2 = v(Y + dt*v1, tau_{n+1}); Y += dt*(v1+v2)/2
            else (LAST interval): Y += dt*v1 (plain Euler; tau_N = 0 is never evaluated)    2N-1
  midpoint: v1 = v(Y, tau_n); v2 = v(Y + dt/2*v1, tau_n + dt/2); Y += dt*v2                2N
  rk4:      k1 = v(Y, t); k2 = v(Y + dt/2*k1, t + dt/2); k3 = v(Y + dt/2*k2, t + dt/2);
            k4 = v(Y + dt*k3, t + dt); Y += dt/6*(k1 + 2k2 + 2k3 + k4)                      4N
  (t + dt/2 is computed as tau_n + 0.5*dt in float64.)
"""
import math

import torch


def time_grid(n_steps, kind="uniform", shift=3.0):
    out = []
    for n in range(n_steps + 1):
        if kind == "uniform":
            t = 1.0 - n / n_steps
        elif kind == "cosine":
            t = (1.0 + math.cos(math.pi * n / n_steps)) / 2.0
        elif kind == "shift":
            u = 1.0 - n / n_steps
            t = shift * u / (1.0 + (shift - 1.0) * u)
        else:
            raise ValueError(kind)
        out.append(t)
    out[-1] = 0.0
    return out


def sample(velocity_fn, noise, mask, n_steps, solver="euler", grid="uniform", shift=3.0, return_all=False):
    """velocity_fn(Y, tau) -> raw velocity [h_max, k_max]. noise [h_max, k_max]. Returns Y at tau=0
    (and the list of intermediate chunks Y_0 = masked noise, Y_1, ..., Y_N when return_all)."""
    taus = time_grid(n_steps, grid, shift)

    def v(y, t):
        return velocity_fn(y, t) * mask

    y = noise * mask
    traj = [y]
    for n in range(n_steps):
        t0, t1 = taus[n], taus[n + 1]
        dt = t1 - t0
        if solver == "euler":
            y = y + dt * v(y, t0)
        elif solver == "heun":
            v1 = v(y, t0)
            if n < n_steps - 1:
                v2 = v(y + dt * v1, t1)
                y = y + dt * (v1 + v2) / 2.0
            else:
                y = y + dt * v1
        elif solver == "midpoint":
            v1 = v(y, t0)
            v2 = v(y + (dt / 2.0) * v1, t0 + 0.5 * dt)
            y = y + dt * v2
        elif solver == "rk4":
            k1 = v(y, t0)
            k2 = v(y + (dt / 2.0) * k1, t0 + 0.5 * dt)
            k3 = v(y + (dt / 2.0) * k2, t0 + 0.5 * dt)
            k4 = v(y + dt * k3, t1)
            y = y + (dt / 6.0) * (k1 + 2.0 * k2 + 2.0 * k3 + k4)
        else:
            raise ValueError(solver)
        traj.append(y)
    return (y, traj) if return_all else y


def n_evaluations(n_steps, solver):
    return {"euler": n_steps, "heun": 2 * n_steps - 1, "midpoint": 2 * n_steps, "rk4": 4 * n_steps}[solver]
