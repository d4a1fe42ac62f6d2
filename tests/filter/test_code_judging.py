"""Code answers judged as the benchmarks judge them, in the real jail: honest programs pass,
wrong ones fail, limits come from the problem, C++ is compiled once."""

import pytest

from distill.filter import jail
from distill.filter.code_tests import call_args, language, same_return, same_stdout
from distill.filter.sandbox import CodeLimits, judge_code, run_program
from distill.filter.verify import check_answer, extract_answer

needs_jail = pytest.mark.skipif(jail.unavailable() is not None, reason=f"no jail here: {jail.unavailable()}")
SUM = [{"input": "2 3\n", "output": "5\n"}, {"input": "-7 100\n", "output": "93"}]
FAST = CodeLimits(time_limit_s=2, wall_s=5)


def passes(code: str, tests=SUM, lang: str = "python", limits: CodeLimits = FAST) -> bool:
    return judge_code(code, lang, tests, limits).passed


# --- comparison (no jail) ---------------------------------------------------------------------------
def test_stdout_is_compared_by_tokens_with_float_tolerance():
    assert same_stdout("5", "5\n\n")
    assert same_stdout("1 2\n3\n", "1  2 3")  # line breaks and spaces do not matter
    assert same_stdout("0.3333333", "0.333333333333")  # within 1e-6
    assert same_stdout("2.0000000001e6", "2000000.0")  # relative 1e-6 for large values
    assert same_stdout("5.0", "5")
    assert not same_stdout("0.3334", "0.333333")
    assert not same_stdout("1000001", "1000000")  # integers are exact, whatever their size
    assert not same_stdout("nan", "0.5")
    assert not same_stdout("5 6", "5")
    assert not same_stdout("YES", "yes")


def test_call_based_values():
    assert call_args("[[2, 7, 11, 15], 9]") == [[2, 7, 11, 15], 9]
    assert call_args("[2, 7, 11, 15]\n9") == [[2, 7, 11, 15], 9]  # LiveCodeBench: one JSON value a line
    assert call_args("('ab', 3)") == ["ab", 3]  # a Python literal (str(list) in some dumps)
    assert call_args("") == []
    assert same_return("[0, 1]", "[[0, 1]]")  # APPS/TACO wrap the expected value in a list
    assert same_return("[0, 1]", "[0, 1]")
    assert same_return("0.30000000000000004", "0.3")
    assert not same_return("[1, 0]", "[[0, 1]]")
    assert not same_return("1", "[1, 2]")  # only a one-element wrapper is unwrapped
    assert not same_return("true", "1")  # a bool is not a number


def test_language_comes_from_the_code_block():
    ans = "Here:\n```cpp\n#include <cstdio>\nint main(){}\n```\nand a sample run:\n```\n5\n```"
    code = extract_answer(ans, "code")
    assert code.language == "cpp" and code.startswith("#include")
    both = "```python\nprint(1)\n```\n```c++\nint main(){}\n```"
    assert extract_answer(both, "code").language == "cpp"  # the last judgeable block
    assert extract_answer("```\nprint(1)\n```", "code").language == "python"
    assert extract_answer("```java\nclass A {}\n```", "code").language is None
    assert language("#include <bits/stdc++.h>\n", "") == "cpp"


# --- in the jail ------------------------------------------------------------------------------------
@needs_jail
def test_honest_python_passes_as_with_python3_main_py():
    assert passes("print(sum(map(int, input().split())))\nexit()")  # exit() needs site: python -S broke it
    assert passes("import sys\nprint(sum(map(int, sys.stdin.read().split())))\nsys.exit(0)")
    assert passes("a, b = map(int, open(0).read().split())\nprint(a + b)")
    assert passes("import sys\ndef main():\n    print(sum(map(int, sys.stdin.buffer.read().split())))\n"
                  "if __name__ == '__main__':\n    main()")
    deep = "def f(n):\n    return 0 if n == 0 else 1 + f(n - 1)\nf(20000)\nprint(sum(map(int, input().split())))"
    assert passes(deep)  # recursion past CPython's default 1000, as judges allow
    assert passes("import threading\nout = []\nt = threading.Thread(target=lambda: out.append(sum(map(int, "
                  "input().split()))))\nt.start()\nt.join()\nprint(out[0])")
    floats = [{"input": "1 3\n", "output": "0.333333333\n"}]
    assert passes("a, b = map(int, input().split())\nprint(f'{a / b:.7f}')", floats)


@needs_jail
def test_wrong_python_fails():
    assert not passes("print(6)")
    assert not passes("print(sum(map(int, input().split())))\nraise SystemExit(3)")  # right output, bad exit
    assert not passes("print(sum(map(int, input().split())) + 1e-3)")
    assert not passes("print(sum(map(int, input().split()))")  # syntax error
    floats = [{"input": "1 3\n", "output": "0.333333333\n"}]
    assert not passes("a, b = map(int, input().split())\nprint(f'{a / b:.3f}')", floats)


@needs_jail
def test_cpp_is_compiled_once_and_run_per_test():
    good = "#include <bits/stdc++.h>\nint main(){long long a,b;std::cin>>a>>b;std::cout<<a+b<<std::endl;}"
    j = judge_code(good, "cpp", SUM * 3, FAST)
    assert j.passed, j.detail
    assert [("compile" in r, "i" in r) for r in j.runs] == [(True, False)] + [(False, True)] * 6
    assert not passes(good.replace("a+b", "a-b"), lang="cpp")
    broken = judge_code("int main( {", "cpp", SUM, FAST)
    assert not broken.passed and broken.detail.startswith("compile error")
    floats = [{"input": "", "output": "3.14159265"}]
    assert passes('#include <cstdio>\nint main(){printf("%.7f\\n", 3.14159265358979);}', floats, "cpp")


@needs_jail
def test_call_based_tests():
    tests = [{"input": "[[2, 7, 11, 15], 9]", "output": "[[0, 1]]", "fn_name": "twoSum"},
             {"input": "[[3, 2, 4], 6]", "output": "[1, 2]", "fn_name": "twoSum"}]
    fn = ("def twoSum(nums, target):\n    seen = {}\n    for i, x in enumerate(nums):\n"
          "        if target - x in seen:\n            return [seen[target - x], i]\n        seen[x] = i\n")
    assert passes(fn, tests)
    leetcode = "from typing import List\nclass Solution:\n    def twoSum(self, nums: List[int], target: int):\n" + \
               "\n".join("    " + line for line in fn.splitlines()[1:]) + "\n"
    assert passes(leetcode, tests)
    assert passes("print('debug chatter is ignored')\n" + fn, tests)
    assert not passes(fn.replace("[seen[target - x], i]", "[i, seen[target - x]]"), tests)
    assert not passes("def other(nums, target):\n    return [0, 1]", tests)


@needs_jail
def test_limits_come_from_the_problem():
    spin = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.6:\n    pass\nprint(5)"
    one = [{"input": "", "output": "5"}]
    assert passes(spin, one, limits=CodeLimits(time_limit_s=3))
    slow = judge_code(spin, "python", one, CodeLimits(time_limit_s=0.3))
    assert not slow.passed and "time limit" in slow.detail  # CPU time, not wall time, decides
    big = "x = bytearray(300 * 1024 * 1024)\nprint(5)"
    assert passes(big, one, limits=CodeLimits(memory_mb=1024))
    assert not passes(big, one, limits=CodeLimits(memory_mb=256))
    asleep = judge_code("import time\ntime.sleep(60)", "python", one, CodeLimits(time_limit_s=0.5, wall_s=2))
    assert not asleep.passed and "wall limit" in asleep.detail  # no CPU used: the wall limit ends it


@needs_jail
def test_what_a_program_sees_in_the_jail():
    probe = """
import os, socket
print(os.getuid(), sorted(os.environ), len([p for p in os.listdir('/proc') if p.isdigit()]))
for path in ('/usr/x', '/x', '/etc/x', 'inside.txt'):
    try:
        open(path, 'w').write('x')
        print(path, 'writable')
    except OSError as e:
        print(path, type(e).__name__)
print(sorted(os.listdir('/')))
"""
    r = run_program(probe, limits=FAST)
    first = r.stdout.splitlines()[0]
    assert first.startswith("65534 "), r.stdout + r.stderr
    assert "HF_TOKEN" not in first and "'HOME', 'LANG'" in first
    assert int(first.rsplit(" ", 1)[1]) <= 2  # the runner (PID 1) and the program: no host process
    assert "inside.txt writable" in r.stdout
    for outside in ("/usr/x", "/x", "/etc/x"):
        assert f"{outside} writable" not in r.stdout
    assert "'root'" not in r.stdout and "'work'" not in r.stdout and "'tmp'" not in r.stdout


def test_no_tests_no_verdict_of_correct():
    assert check_answer("code", "", "print(5)", tests=[]) == ["tests_failed"]
