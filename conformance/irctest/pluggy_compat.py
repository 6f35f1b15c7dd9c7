"""Lets irctest's conftest.py load with an older pluggy (Debian 12's 1.0).

irctest declares its pytest_runtest_call wrapper with
@pytest.hookimpl(wrapper=True), the new-style hook wrappers of pluggy 1.1;
pluggy 1.0 refuses that keyword, and every test errors. run.sh loads this
module with `-p pluggy_compat` before conftest.py is imported: where
pluggy does not know wrapper=True, pytest.hookimpl then turns such a
wrapper into an old-style hookwrapper=True one that runs the same
generator. With a newer pluggy this module does nothing. The irctest
checkout is left as it is.
"""

import inspect

import pytest


def _knows_new_style_wrappers() -> bool:
    try:
        pytest.hookimpl(wrapper=True)
    except TypeError:
        return False
    return True


def _run_new_style(func, *args):
    gen = func(*args)
    next(gen)
    outcome = yield
    try:
        if outcome.excinfo is None:
            gen.send(outcome.get_result())
        else:
            gen.throw(outcome.excinfo[1])
    except StopIteration as stop:
        outcome.force_result(stop.value)
    except BaseException as e:  # what the wrapper raised (or re-raised)
        outcome._excinfo = (type(e), e, e.__traceback__)
    else:
        raise RuntimeError(f"{func.__name__}: a hook wrapper must yield once")


def _as_old_style(func):
    # pluggy passes a hook implementation the arguments its signature
    # names, so the old-style wrapper must have the same ones; and pluggy
    # 1.0 wants a generator function.
    names = inspect.getfullargspec(func).args
    params = ", ".join(names)
    src = f"def {func.__name__}({params}):\n    yield from _run(_func, {params})\n"
    scope = {"_run": _run_new_style, "_func": func}
    exec(src, scope)
    wrapper = scope[func.__name__]
    wrapper.__doc__ = func.__doc__
    wrapper.__module__ = func.__module__
    return wrapper


if not _knows_new_style_wrappers():
    _hookimpl = pytest.hookimpl

    def hookimpl(function=None, *, wrapper=False, **kwargs):
        if not wrapper:
            return _hookimpl(function, **kwargs)

        def decorate(func):
            return _hookimpl(hookwrapper=True, **kwargs)(_as_old_style(func))

        return decorate(function) if function is not None else decorate

    pytest.hookimpl = hookimpl
