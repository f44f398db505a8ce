# Probe for roundtrip.ipynb: runs in the original kernel and in the restored one, and `verify`
# compares what it computes. Each line checks something a fingerprint alone cannot.
g_next = next(gen)  # the generator resumes where it stopped: 4
same = b is a  # aliasing survived
shared_in_dict = registry["items"] is a and registry["nested"]["again"] is a
deposit_after = acct.deposit(1)  # the restored instance still has its class's methods
scaled_again = scale([1, 2])
square_7 = square(7)
big_sum = float(big.sum())
df_total = float(df.z.sum())
tmp_gone = "tmp" not in globals()  # a del'd name stays deleted
np_is_numpy = np.__name__ == "numpy"
